//! `booking-host admin …`: the admin API from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the admin API.
    #[arg(long, env = "ADMIN_URL", default_value = "http://127.0.0.1:9000")]
    pub url: String,
    /// Bearer token; wins over `--token-file`.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token. Default: the one the host generates,
    /// `<data dir>/admin-token`.
    #[arg(long, env = "ADMIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// List loaded versions and their roles.
    List,
    /// Upload a component; it is checked and kept as a candidate.
    Upload {
        path: PathBuf,
        /// Activate it once it passes the checks.
        #[arg(long)]
        activate: bool,
    },
    /// Make a loaded version active (sha256 or a unique prefix).
    Activate { version: String },
    /// Return to the previous version.
    Rollback,
    /// Send a share of requests to a loaded version.
    Canary { version: String, percent: u32 },
    /// Make the canary the active version.
    Promote,
    /// Stop the canary; all requests go to the active version.
    Abort,
}

pub async fn run(args: AdminArgs, data_dir: &Path) -> anyhow::Result<()> {
    let token = match args.token.clone().filter(|token| !token.is_empty()) {
        Some(token) => token,
        None => {
            let path = args
                .token_file
                .clone()
                .unwrap_or_else(|| crate::admin::token_file(data_dir));
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "reading the admin token from {} (set ADMIN_TOKEN, --token-file or --data-dir)",
                        path.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/admin/{path}", args.url.trim_end_matches('/'));
    let request = match &args.action {
        AdminAction::List => client.get(url("versions")),
        AdminAction::Upload { path, activate } => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let source = path.display().to_string();
            client
                .post(url("versions"))
                .query(&[("activate", activate.to_string()), ("source", source)])
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes)
        }
        AdminAction::Activate { version } => {
            client.post(url(&format!("versions/{version}/activate")))
        }
        AdminAction::Rollback => client.post(url("rollback")),
        AdminAction::Canary { version, percent } => client
            .post(url("canary"))
            .json(&json!({"version": version, "percent": percent})),
        AdminAction::Promote => client.post(url("canary/promote")),
        AdminAction::Abort => client.post(url("canary/abort")),
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching the admin API at {}", args.url))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .context("the admin API answered with something other than JSON")?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if !status.is_success() {
        anyhow::bail!("the admin API answered {status}");
    }
    Ok(())
}
