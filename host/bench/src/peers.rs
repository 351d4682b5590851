//! The reference peers standalone (`reference-peers`, on their default
//! ports, which `spin.toml` allows), for comparisons where our host and
//! `spin up` must call the same services.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::ServerProcess;

const CINEMA: &str = "127.0.0.1:50051";
const USERS: &str = "127.0.0.1:8001";
const PAYMENTS: &str = "127.0.0.1:8002";

pub struct StandalonePeers {
    _process: ServerProcess,
}

impl StandalonePeers {
    pub async fn start(binary: &Path) -> anyhow::Result<StandalonePeers> {
        for address in [CINEMA, USERS, PAYMENTS] {
            if TcpStream::connect(address).is_ok() {
                bail!("{address} is taken: stop what listens there (reference peers?) first");
            }
        }
        let child = Command::new(binary)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let peers = StandalonePeers {
            _process: ServerProcess::new(child),
        };
        let started = Instant::now();
        while [CINEMA, USERS, PAYMENTS]
            .iter()
            .any(|address| TcpStream::connect(address).is_err())
        {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the reference peers did not listen within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(peers)
    }

    /// The variables that point our host at them.
    pub fn service_urls(&self) -> [(&'static str, String); 3] {
        [
            ("CINEMA_SERVICE_URL", format!("http://{CINEMA}")),
            ("USER_SERVICE_URL", format!("http://{USERS}")),
            ("PAYMENT_SERVICE_URL", format!("http://{PAYMENTS}")),
        ]
    }
}
