//! The MongoDB database shared by the MongoDB `storage` and `events`
//! adapters: one driver client (its own connection pool, reconnecting by
//! itself), a deadline on every operation, and the mapping of driver
//! errors to port errors.
//!
//! Written for MongoDB 6 and 7 on a standalone server or a replica set,
//! using single-document atomic operations only (no transactions), and
//! tested against nx-27017, a MongoDB-wire server, which supports the same
//! subset. Writes are acknowledged by a majority, journaled, and reads see
//! majority-committed data unless `Durability` says otherwise.

use std::future::IntoFuture;
use std::time::Duration;

use anyhow::Context;
use booking_logic::ports::{PortError, PortResult};
use mongodb::bson::doc;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, ReadConcern, Tls, WriteConcern};
use mongodb::{Client, Collection};

use crate::tls::TlsRoots;

/// The database used when neither the config nor the URL names one.
pub const DEFAULT_DATABASE: &str = "movietickets";

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// `mongodb://…` connection string (`tls=true` for TLS), or
    /// `mongodb+srv://…` (hosts from DNS SRV, TLS on by default).
    pub url: String,
    /// Overrides the database named in the URL's path.
    pub database: Option<String>,
    /// Deadline of every operation; past it the outcome is unknown.
    pub timeout: Duration,
    /// How long to wait for a reachable server before calling the
    /// database unavailable (connect and server selection).
    pub connect_timeout: Duration,
    /// Overrides the write and read concerns of the URL.
    pub durability: Durability,
    /// The CA bundle is the URL's `tlsCAFile` when it names none. The
    /// driver then trusts that bundle only, not the public roots.
    pub tls: TlsRoots,
}

/// When MongoDB acknowledges a write, and which writes a read sees. The
/// default survives the loss of the primary: a booking acknowledged to a
/// client is never rolled back by a failover, nor is a read answered from
/// data that could be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// Write concern `w`: `majority`, a number of members (at least 1:
    /// an unacknowledged write could not report a version conflict), or a
    /// custom tag-set name.
    pub write: String,
    /// Write concern `j`: acknowledged only once in the on-disk journal.
    pub journal: bool,
    /// Read concern level: `majority`, `local`, `available` or
    /// `linearizable`.
    pub read: String,
}

impl Default for Durability {
    fn default() -> Self {
        Durability {
            write: "majority".into(),
            journal: true,
            read: "majority".into(),
        }
    }
}

const READ_LEVELS: [&str; 4] = ["majority", "local", "available", "linearizable"];

impl Durability {
    fn write_concern(&self) -> anyhow::Result<WriteConcern> {
        let w = match self.write.parse::<u32>() {
            Ok(0) => anyhow::bail!("MongoDB write concern 0: writes must be acknowledged"),
            Ok(members) => Acknowledgment::from(members),
            Err(_) if self.write.is_empty() => anyhow::bail!("empty MongoDB write concern"),
            Err(_) => Acknowledgment::from(self.write.as_str()),
        };
        Ok(WriteConcern::builder().w(w).journal(self.journal).build())
    }

    fn read_concern(&self) -> anyhow::Result<ReadConcern> {
        anyhow::ensure!(
            READ_LEVELS.contains(&self.read.as_str()),
            "MongoDB read concern {:?}: one of {}",
            self.read,
            READ_LEVELS.join(", ")
        );
        Ok(ReadConcern::custom(&self.read))
    }
}

#[derive(Clone)]
pub struct MongoDatabase {
    database: mongodb::Database,
    timeout: Duration,
}

/// Whether an operation changes data: if a write's connection breaks
/// mid-way it may have been applied, which the logic must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

impl MongoDatabase {
    /// Parses the URL and builds the client. Connecting happens in the
    /// background; the first operation (or `health`) waits for it.
    pub async fn connect(config: &MongoConfig) -> anyhow::Result<MongoDatabase> {
        let mut options = ClientOptions::parse(&config.url)
            .await
            .context("parsing MONGODB_URL")?;
        options
            .app_name
            .get_or_insert_with(|| "booking-host".into());
        options.connect_timeout = Some(config.connect_timeout);
        options.write_concern = Some(config.durability.write_concern()?);
        options.read_concern = Some(config.durability.read_concern()?);
        options.server_selection_timeout = Some(config.connect_timeout);
        if let (Some(Tls::Enabled(tls)), Some(ca_file)) =
            (&mut options.tls, config.tls.extra_file())
        {
            tls.ca_file_path.get_or_insert_with(|| ca_file.to_owned());
        }
        let name = config
            .database
            .clone()
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let client = Client::with_options(options).context("configuring the MongoDB client")?;
        Ok(MongoDatabase {
            database: client.database(&name),
            timeout: config.timeout,
        })
    }

    pub fn name(&self) -> &str {
        self.database.name()
    }

    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.database.collection(name)
    }

    /// Runs one driver operation under the deadline, mapping its errors.
    pub async fn run<T>(
        &self,
        operation: Operation,
        work: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> PortResult<T> {
        match tokio::time::timeout(self.timeout, work.into_future()).await {
            Ok(result) => result.map_err(|error| port_error(&error, operation)),
            Err(_) => Err(PortError::Timeout(format!(
                "database: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    pub async fn health(&self) -> Result<(), String> {
        self.run(
            Operation::Read,
            self.database.run_command(doc! { "ping": 1 }),
        )
        .await
        .map(drop)
        .map_err(|error| error.to_string())
    }
}

/// True for a unique-index violation, whichever way the server reports it.
fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        _ => false,
    }
}

fn port_error(error: &mongodb::error::Error, operation: Operation) -> PortError {
    let detail = format!("database: {error}");
    match error.kind.as_ref() {
        _ if is_duplicate_key(error) => PortError::Conflict(detail),
        // The request may have reached the server before the connection
        // broke.
        ErrorKind::Io(_) if operation == Operation::Write => PortError::Timeout(detail),
        // No server, or one that refused before doing anything.
        _ => PortError::Unavailable(detail),
    }
}
