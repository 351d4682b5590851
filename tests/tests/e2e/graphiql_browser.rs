//! GraphiQL works offline in a real browser: the host serves GraphiQL's
//! vendored scripts at `/graphiql/<file>`, and headless Chromium (Debian's
//! `chromium`, driven by `tests/browser/graphiql.mjs` with playwright-core)
//! types a query into GraphiQL, runs it and sees the movie title. The
//! same Node.js setup runs the `graphql-http` library's GraphQL-over-HTTP
//! audit suite against the endpoint (`tests/browser/graphql-http-audit.mjs`).
//!
//! `scripts/test-services.sh` installs chromium and runs `npm ci` in
//! `tests/browser`. Outside CI the browser test skips without chromium or
//! Node.js; in CI it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use e2e_tests::{Options, TestService};

const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Whether chromium and Node.js are installed: `false` (and a loud
/// message) outside CI, a failure in CI.
fn browser_available() -> bool {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(CHROMIUM);
    }
    if !runs("node") {
        missing.push("node");
    }
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(" and ");
    if std::env::var_os("CI").is_some() {
        panic!("{missing} missing in CI: scripts/test-services.sh must install them");
    }
    // Straight to stderr: the test harness swallows `eprintln!` of passing
    // tests, and a skip must not look like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {missing} missing. Run `source scripts/test-services.sh` \
         or scripts/test.sh to install them. ***\n"
    );
    false
}

/// `npm ci` in tests/browser when playwright-core or graphql-http is not
/// installed yet, once for all the tests of the process (two `npm ci` in
/// one directory at once would trip over each other).
fn install_playwright() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(npm_ci_unless_installed);
}

fn npm_ci_unless_installed() {
    let dir = browser_dir();
    if [
        "playwright-core",
        "graphql-http",
        "graphql-ws",
        "graphql-sse",
        "ws",
    ]
    .iter()
    .all(|package| {
        dir.join(format!("node_modules/{package}/package.json"))
            .exists()
    }) {
        return;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--prefix",
        ])
        .arg(&dir)
        .status()
        .expect("running npm (Node.js's package manager)");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

/// Whether the browser tests can run: chromium and Node.js are there
/// (see `browser_available`), and so is playwright-core (installed here
/// if need be).
pub(crate) async fn browser_ready() -> bool {
    if !browser_available() {
        return false;
    }
    tokio::task::spawn_blocking(install_playwright)
        .await
        .expect("npm ci");
    true
}

/// Runs `node tests/browser/<script> <argument>` to its end.
async fn node(script: &str, argument: String) -> std::process::Output {
    let script = browser_dir().join(script);
    tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .arg(&argument)
            .output()
            .expect("running node")
    })
    .await
    .expect("the node script")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_typed_into_graphiql_returns_data() {
    if !browser_ready().await {
        return;
    }
    let service = TestService::start(Options::default()).await;

    let output = node("graphiql.mjs", service.base_url.clone()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser did not get the data through GraphiQL ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("\"movieTitle\": \"Inception\""),
        "the result pane shows the movie: {stdout}"
    );

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_http_audit_finds_no_warning_and_no_error() {
    if !browser_ready().await {
        return;
    }
    let service = TestService::start(Options {
        auth_required: true,
        ..Options::default()
    })
    .await;
    let url = format!("{}/graphql", service.base_url);
    let output = node("graphql-http-audit.mjs", url).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("no audit summary ({}):\n{stdout}\n{stderr}", output.status));
    assert_eq!(summary["warnings"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["errors"], serde_json::json!([]), "{summary}");
    assert!(
        summary["ok"].as_u64().is_some_and(|ok| ok >= 30),
        "the audit ran its rules: {summary}"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_serves_graphiql_files_with_long_caching() {
    let service = TestService::start(Options::default()).await;

    for (file, content_type) in [
        ("graphiql.min.js", "text/javascript; charset=utf-8"),
        ("graphiql.min.css", "text/css; charset=utf-8"),
        ("react.production.min.js", "text/javascript; charset=utf-8"),
        (
            "react-dom.production.min.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let response = service.get(&format!("/graphiql/{file}?v=1")).await;
        assert_eq!(response.status(), 200, "{file}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("content-type").as_deref(), Some(content_type));
        assert_eq!(
            header("cache-control").as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        let body = response.bytes().await.expect("body");
        assert!(body.len() > 1000, "{file} has content");
    }

    for unknown in ["nope.js", "LICENSE.react", "..%2Fhttp.rs"] {
        let response = service.get(&format!("/graphiql/{unknown}")).await;
        assert_eq!(response.status(), 404, "{unknown}");
    }

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_graphiql_files_without_introspection() {
    let service =
        TestService::start(Options::with_args(&["--graphql-introspection", "false"])).await;

    let response = service.get("/graphiql/graphiql.min.js").await;
    assert_eq!(response.status(), 404);

    service.stop().await;
}
