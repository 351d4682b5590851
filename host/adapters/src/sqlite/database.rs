//! The embedded database shared by the embedded `storage` and `events`
//! adapters: one SQLite file in WAL mode. SQLite is synchronous, so every
//! call runs on tokio's blocking pool behind one connection; SQLite
//! serialises writers anyway, and one connection keeps it simple.

use std::path::Path;
use std::sync::{Arc, Mutex};

use booking_logic::ports::{PortError, PortResult};
use rusqlite::Connection;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bookings (
    id                     TEXT PRIMARY KEY,
    user_id                TEXT NOT NULL,
    showtime_id            TEXT NOT NULL,
    seats                  TEXT NOT NULL,
    total_cents            INTEGER NOT NULL,
    currency               TEXT NOT NULL,
    status                 TEXT NOT NULL,
    lock_id                TEXT NOT NULL,
    lock_expires_at        INTEGER NOT NULL,
    payment_transaction_id TEXT,
    failure_reason         TEXT,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    version                INTEGER NOT NULL
    -- and ADDED_BOOKING_COLUMNS
);
CREATE INDEX IF NOT EXISTS bookings_by_user ON bookings (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS bookings_by_expiry ON bookings (status, lock_expires_at);

CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    booking_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    -- When the broker confirmed it (or, with no broker, when it was stored);
    -- NULL while it waits in the outbox for the relay.
    published_at INTEGER
);
CREATE INDEX IF NOT EXISTS events_by_booking ON events (booking_id, seq);

-- The first answer to a mutation sent with an idempotency key, per user.
CREATE TABLE IF NOT EXISTS idempotency_records (
    user_id          TEXT NOT NULL,
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    response         TEXT,
    lease_expires_at INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
-- The sweep's purge.
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency_records (expires_at);
"#;

/// Booking columns added since the first schema. `migrate` adds them to
/// new and old files alike, so each is declared once.
const ADDED_BOOKING_COLUMNS: [(&str, &str); 4] = [
    ("charge_attempted_at", "INTEGER"),
    ("refunded_at", "INTEGER"),
    ("settle_after", "INTEGER"),
    ("settle_attempts", "INTEGER NOT NULL DEFAULT 0"),
];

/// Indexes on columns that older files gain in `migrate`.
const LATE_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS events_unpublished ON events (seq) WHERE published_at IS NULL;
-- The sweep's settling; most bookings owe nothing and stay out of it.
CREATE INDEX IF NOT EXISTS bookings_unsettled ON bookings (settle_after) WHERE settle_after IS NOT NULL;
"#;

#[derive(Clone)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
}

impl Database {
    /// Opens (creating if needed) the database file and its schema.
    pub fn open(path: &Path) -> anyhow::Result<Database> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut connection = Connection::open(path)?;
        // WAL: readers never block the writer; FULL: a committed booking
        // survives power loss.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(SCHEMA)?;
        migrate(&mut connection)?;
        connection.execute_batch(LATE_INDEXES)?;
        Ok(Database {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on the blocking pool with the connection.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection
                .lock()
                .map_err(|_| PortError::Unavailable("the database lock is poisoned".into()))?;
            work(&mut connection)
        })
        .await
        .map_err(|error| PortError::Unavailable(format!("database task failed: {error}")))?
    }

    pub async fn health(&self) -> Result<(), String> {
        self.run(|connection| {
            connection
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(unavailable)
        })
        .await
        .map_err(|error| error.to_string())
    }
}

/// Brings a file written by an older build up to the current schema.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    let before_settling = !has_column(&transaction, "bookings", "settle_after")?;
    for (column, declaration) in ADDED_BOOKING_COLUMNS {
        if !has_column(&transaction, "bookings", column)? {
            transaction.execute_batch(&format!(
                "ALTER TABLE bookings ADD COLUMN {column} {declaration};"
            ))?;
        }
    }
    if before_settling {
        // Bookings that ended under a build without settlement may still
        // owe a refund or a seat release it gave up on: settle each once
        // (every step is idempotent, so one that owed nothing loses nothing).
        transaction.execute_batch(
            "UPDATE bookings SET settle_after = 0 WHERE status NOT IN ('PENDING', 'CONFIRMED');",
        )?;
    }
    transaction.commit()?;
    if !has_column(connection, "events", "published_at")? {
        // Builds without a broker wrote these: the log was their only sink,
        // so they are delivered, and a relay started later must not replay
        // the whole history.
        let transaction = connection.transaction()?;
        transaction.execute_batch(
            "ALTER TABLE events ADD COLUMN published_at INTEGER; \
             UPDATE events SET published_at = occurred_at;",
        )?;
        transaction.commit()?;
    }
    Ok(())
}

fn has_column(connection: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    connection
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])
}

pub fn unavailable(error: rusqlite::Error) -> PortError {
    PortError::Unavailable(format!("database: {error}"))
}
