//! Real servers for tests (RabbitMQ, a MongoDB-wire server): where they
//! are, and a TCP proxy to cut a client off from one and restore it.
//! `scripts/test-services.sh` starts them and exports their URLs.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The URL in `variable`, or `None` (and a loud message) when it is unset
/// outside CI. In CI (`CI` set) a missing server fails the test.
pub fn service_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{variable} is not set in CI: scripts/test-services.sh must start the server")
        }
        _ => {
            // Straight to stderr: the test harness swallows `eprintln!` of
            // passing tests, and a skip must not look like a pass.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: {variable} is not set. Run `source scripts/test-services.sh` \
                 or scripts/test.sh to start the test servers. ***\n"
            );
            None
        }
    }
}

/// A name no other test uses (databases, exchanges, keys): unique per
/// process by a counter (the tests of one binary share a process id and
/// may ask in the same nanosecond), and across runs by the process id and
/// the time.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}

/// Forwards loopback connections to a server. `cut()` closes every open
/// connection and makes new ones close at once, as a dead server would;
/// `restore()` forwards again.
pub struct Proxy {
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy in front of the server of `url` (`scheme://[user@]host:port…`),
    /// and the same URL pointing at the proxy.
    pub async fn in_front_of(url: &str) -> (Proxy, String) {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (user, target) = match authority.rsplit_once('@') {
            Some((user, target)) => (format!("{user}@"), target.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let task = tokio::spawn({
            let up = up.clone();
            let generation = generation.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let target = target.clone();
                    let mut cut = generation.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            }
        });
        let proxy = Proxy {
            up,
            generation,
            task,
        };
        (proxy, format!("{scheme}://{user}127.0.0.1:{port}{tail}"))
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|generation| *generation += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
