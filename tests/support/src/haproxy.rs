//! HAProxy (Debian's package, `TEST_HAPROXY_BIN`) in front of several
//! hosts on loopback, as a fleet runs behind a load balancer: round
//! robin, health-checked on `/health/ready` every 300 ms, a connection
//! that fails before its request is sent retried on another server.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::service_url;

pub struct Balancer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _config: tempfile::TempDir,
}

impl Balancer {
    /// Starts HAProxy in front of `backends` (`http://host:port` each), or
    /// `None` (skipped loudly) when it is not installed outside CI.
    pub async fn start(backends: &[String]) -> Option<Balancer> {
        let binary = service_url("TEST_HAPROXY_BIN")?;
        // A free port, released for HAProxy to bind.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(n, url)| {
                let address = url.trim_start_matches("http://").trim_end_matches('/');
                format!("    server replica{n} {address} check\n")
            })
            .collect();
        let config = format!(
            "global\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n\
             \x20   timeout check 2s\n\
             \x20   retries 3\n    retry-on conn-failure\n    option redispatch 1\n\
             frontend public\n    bind 127.0.0.1:{port}\n    default_backend fleet\n\
             backend fleet\n    balance roundrobin\n    option httpchk GET /health/ready\n\
             \x20   http-check expect status 200\n\
             \x20   default-server inter 300ms fastinter 200ms fall 3 rise 1\n{servers}"
        );
        let dir = tempfile::tempdir().expect("a directory for haproxy.cfg");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("writing haproxy.cfg");
        let check = Command::new(&binary)
            .args(["-c", "-q", "-f"])
            .arg(&path)
            .status()
            .expect("running haproxy -c");
        assert!(check.success(), "haproxy refused its configuration");
        let child = Command::new(&binary)
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting haproxy");
        let balancer = Balancer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _config: dir,
        };
        balancer.wait_until_serving().await;
        Some(balancer)
    }

    /// Until a health check found a server up and a request goes through.
    async fn wait_until_serving(&self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.url.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut answer = Vec::new();
            if let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await
                && stream
                    .write_all(b"GET /health/ready HTTP/1.0\r\n\r\n")
                    .await
                    .is_ok()
            {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut answer))
                        .await;
            }
            if answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not serve within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
