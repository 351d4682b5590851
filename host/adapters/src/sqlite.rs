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
);
CREATE INDEX IF NOT EXISTS bookings_by_user ON bookings (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS bookings_by_expiry ON bookings (status, lock_expires_at);

CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    booking_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,
    payload     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_booking ON events (booking_id, seq);
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
        let connection = Connection::open(path)?;
        // WAL: readers never block the writer; FULL: a committed booking
        // survives power loss.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(SCHEMA)?;
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

pub fn unavailable(error: rusqlite::Error) -> PortError {
    PortError::Unavailable(format!("database: {error}"))
}
