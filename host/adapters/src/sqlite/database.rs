//! The embedded database shared by the embedded `storage` and `events`
//! adapters: one SQLite file in WAL mode. SQLite is synchronous, so every
//! call runs on tokio's blocking pool behind one connection; SQLite
//! serialises writers anyway, and one connection keeps it simple.
//!
//! The schema, its migration and every statement are
//! `booking_adapters_core::sqlite`'s, the same the Spin adapter runs; here
//! they run over rusqlite.

use std::path::Path;
use std::sync::{Arc, Mutex};

use booking_adapters_core::sqlite;
use booking_logic::ports::{PortError, PortResult};
use rusqlite::Connection;

pub use booking_adapters_core::sqlite::unavailable;

/// Prepared statements kept per connection: every statement of
/// `booking_adapters_core::sqlite` stays prepared.
const STATEMENT_CACHE: usize = 64;

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
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // A file of any earlier release is brought up to the schema in
        // place, all or nothing.
        let transaction = connection.transaction()?;
        sqlite::migrate(&*transaction)?;
        transaction.commit()?;
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
