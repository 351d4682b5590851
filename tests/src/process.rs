//! The booking host as a process of its own (the `e2e-host` binary, the
//! same command line as `booking-host`), for what only a process has:
//! signals, an exit status, a restart on the same data.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use booking_peers::RunningPeers;

pub struct HostProcess {
    child: Child,
    pub base_url: String,
    /// `http://<admin address>` (the admin API's routes start `/admin`).
    pub admin_url: String,
    /// Everything the host logged so far (its stdout).
    log: Arc<Mutex<String>>,
}

impl HostProcess {
    /// Starts `binary` (pass `env!("CARGO_BIN_EXE_e2e-host")`) against
    /// `peers` on `data_dir`, on free loopback ports, with `args` on top,
    /// and returns once it answers `/health`.
    pub async fn start(
        binary: &str,
        peers: &RunningPeers,
        data_dir: &Path,
        args: &[&str],
    ) -> HostProcess {
        HostProcess::start_with_env(binary, peers, data_dir, args, &[]).await
    }

    /// The same, with `env` set for the host (e.g. `OTEL_*`).
    pub async fn start_with_env(
        binary: &str,
        peers: &RunningPeers,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> HostProcess {
        let mut command = Command::new(binary);
        // The booking component unless `args` name another.
        if !args.contains(&"--component") {
            command
                .arg("--component")
                .arg(crate::component("booking_component"));
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--cinema-service-url", &peers.cinema_url])
            .args(["--user-service-url", &peers.users_url])
            .args(["--payment-service-url", &peers.payments_url])
            .args(["--api-timeout", "5"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the host process");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let mut host = HostProcess {
            child,
            base_url: String::new(),
            admin_url: String::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        // The address is known once the host logs it (it binds port 0).
        while host.base_url.is_empty() || host.admin_url.is_empty() {
            let log = host.log();
            if let Some((_, rest)) = log.split_once("serving GraphQL on ")
                && let Some((url, _)) = rest.split_once("/graphql")
            {
                host.base_url = url.to_owned();
            }
            if let Some((_, rest)) = log.split_once("admin API on http://")
                && let Some((address, _)) = rest.split_once("/admin")
            {
                host.admin_url = format!("http://{address}");
            }
            host.assert_running(deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let client = reqwest::Client::new();
        while client
            .get(format!("{}/health", host.base_url))
            .send()
            .await
            .is_err()
        {
            host.assert_running(deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        host
    }

    fn assert_running(&mut self, deadline: Instant) {
        if let Some(status) = self.child.try_wait().expect("the host's status") {
            panic!("the host exited while starting ({status}):\n{}", self.log());
        }
        assert!(
            Instant::now() < deadline,
            "the host did not start within 120 s:\n{}",
            self.log()
        );
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the host.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// The exit status, once the host has exited; `None` after `limit`.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("the host's status") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HostProcess {
    /// A failing test must not leave the host running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
