//! "What may import what" (ARCHITECTURE.md, Invariants), enforced on the
//! workspace's dependency graph as `cargo metadata` resolves it (every
//! platform, the workspace's features), and on the runtime's source for
//! the one rule cargo cannot see. A broken rule fails with the offending
//! edge, or the chain of dependencies that leads to it.
//!
//! The rules are the table `RULES`; a rule for a crate that is not in the
//! workspace fails, so that a rename cannot switch a rule off unnoticed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Crates that do I/O, keep time or draw randomness, or run or bind to a
/// sandbox: none of them may be under the logic. (async-graphql brings
/// in `async-io` for its own use; the logic never polls it, and it is not
/// listed.)
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "socket2",
    "async-std",
    "smol",
    "hyper",
    "hyper-util",
    "axum",
    "reqwest",
    "tonic",
    "rusqlite",
    "libsqlite3-sys",
    "mongodb",
    "lapin",
    "rustls",
    "getrandom",
    "rand",
    "uuid",
    "wasmtime",
    "wasmtime-wasi",
    "wasmtime-wasi-http",
    "wasip2",
    "wstd",
    "wit-bindgen",
    "spin-sdk",
];

enum Check {
    /// None of these crates is anywhere in the crate's normal (non-dev,
    /// non-build) dependency graph.
    NeverReaches(&'static [&'static str]),
    /// The crate's direct normal dependencies are all among these.
    DependsOnlyOn(&'static [&'static str]),
    /// No crate of the workspace but these depends on it (in any way:
    /// normal, dev or build).
    OnlyDependedOnBy(&'static [&'static str]),
}

struct Rule {
    package: &'static str,
    check: Check,
}

const fn rule(package: &'static str, check: Check) -> Rule {
    Rule { package, check }
}

const RULES: &[Rule] = &[
    rule("booking-logic", Check::NeverReaches(IO_CRATES)),
    // The records, enums and port errors, shared by the logic and its
    // hosts: plain data, its JSON and nothing else.
    rule(
        "booking-model",
        Check::DependsOnlyOn(&["serde", "serde_json"]),
    ),
    rule(
        "booking-component",
        Check::DependsOnlyOn(&[
            "booking-logic",
            "booking-model",
            // WIT bindings and WASI.
            "wit-bindgen",
            "wasip2",
            "wstd",
            // No I/O: the port traits' async, and a block_on for the
            // maintenance export.
            "async-trait",
            "futures",
        ]),
    ),
    rule(
        "booking-adapters",
        Check::NeverReaches(&["booking-runtime", "booking-host"]),
    ),
    rule("booking-host", Check::OnlyDependedOnBy(&["e2e-tests"])),
    // Metrics and traces are a leaf every host crate may use: they know
    // the model's report, never the logic, the sandbox or a backend.
    rule(
        "booking-telemetry",
        Check::NeverReaches(&[
            "booking-logic",
            "booking-runtime",
            "booking-adapters",
            "booking-host",
            "wasmtime",
        ]),
    ),
];

/// The resolved dependency graph of the workspace.
struct Graph {
    names: HashMap<String, String>,
    /// Package id → (dependency id, its kinds: `normal`, `dev`, `build`).
    deps: HashMap<String, Vec<(String, Vec<String>)>>,
    /// Name → id of each workspace member.
    members: HashMap<String, String>,
}

impl Graph {
    fn load() -> Graph {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .output()
            .expect("running cargo metadata");
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
        let text = |value: &Value| value.as_str().expect("a string").to_owned();
        let names: HashMap<String, String> = list(&metadata["packages"])
            .map(|package| (text(&package["id"]), text(&package["name"])))
            .collect();
        let members = list(&metadata["workspace_members"])
            .map(|id| (names[&text(id)].clone(), text(id)))
            .collect();
        let deps = list(&metadata["resolve"]["nodes"])
            .map(|node| {
                let edges = list(&node["deps"])
                    .map(|dep| {
                        let kinds = list(&dep["dep_kinds"])
                            .map(|kind| kind["kind"].as_str().unwrap_or("normal").to_owned())
                            .collect();
                        (text(&dep["pkg"]), kinds)
                    })
                    .collect();
                (text(&node["id"]), edges)
            })
            .collect();
        Graph {
            names,
            deps,
            members,
        }
    }

    fn name(&self, id: &str) -> &str {
        &self.names[id]
    }

    /// The normal dependencies of `id`.
    fn normal(&self, id: &str) -> impl Iterator<Item = &str> {
        self.deps[id]
            .iter()
            .filter(|(_, kinds)| kinds.iter().any(|kind| kind == "normal"))
            .map(|(dep, _)| dep.as_str())
    }

    /// The shortest chain of normal dependencies from `from` to a package
    /// named `target`, as names.
    fn path_to(&self, from: &str, target: &str) -> Option<Vec<String>> {
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(id) = queue.pop_front() {
            if self.name(id) == target {
                let mut chain = vec![self.name(id).to_owned()];
                let mut at = id;
                while let Some(&up) = parent.get(at) {
                    chain.push(self.name(up).to_owned());
                    at = up;
                }
                chain.reverse();
                return Some(chain);
            }
            for dep in self.normal(id) {
                if dep != from && !parent.contains_key(dep) {
                    parent.insert(dep, id);
                    queue.push_back(dep);
                }
            }
        }
        None
    }

    /// What breaks `rule`, one line per offending edge or chain.
    fn violations(&self, rule: &Rule) -> Vec<String> {
        let Some(id) = self.members.get(rule.package) else {
            return vec![format!(
                "{}: no such workspace package (renamed? update the rule)",
                rule.package
            )];
        };
        match rule.check {
            Check::NeverReaches(forbidden) => forbidden
                .iter()
                .filter_map(|crate_name| {
                    let chain = self.path_to(id, crate_name)?;
                    Some(format!(
                        "{}: {} must not depend on {crate_name}, not even indirectly",
                        chain.join(" -> "),
                        rule.package
                    ))
                })
                .collect(),
            Check::DependsOnlyOn(allowed) => self
                .normal(id)
                .map(|dep| self.name(dep))
                .filter(|name| !allowed.contains(name))
                .map(|name| {
                    format!(
                        "{} -> {name}: {} may depend only on {}",
                        rule.package,
                        rule.package,
                        allowed.join(", ")
                    )
                })
                .collect(),
            Check::OnlyDependedOnBy(allowed) => {
                let mut lines = Vec::new();
                for (user, user_id) in &self.members {
                    for (dep, kinds) in &self.deps[user_id] {
                        if dep == id && !allowed.contains(&user.as_str()) {
                            lines.push(format!(
                                "{user} -> {} ({}): only {} may depend on {}",
                                rule.package,
                                kinds.join(", "),
                                allowed.join(", "),
                                rule.package
                            ));
                        }
                    }
                }
                lines
            }
        }
    }
}

fn list(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().expect("a JSON array").iter()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn what_may_import_what_holds_for_the_dependency_graph() {
    let graph = Graph::load();
    let broken: Vec<String> = RULES
        .iter()
        .flat_map(|rule| graph.violations(rule))
        .collect();
    assert!(
        broken.is_empty(),
        "ARCHITECTURE.md, \"What may import what\", is broken:\n  {}",
        broken.join("\n  ")
    );
}

/// `host/runtime` takes only the port traits and the records from the
/// logic (`booking_logic::ports`, `booking_logic::model`), never the
/// workflow, the schema or anything else: cargo sees one edge either way,
/// so this reads the source.
#[test]
fn the_runtime_uses_only_the_ports_and_records_of_the_logic() {
    const ALLOWED: &[&str] = &["model", "ports"];
    let mut used = BTreeSet::new();
    for file in rust_files(&workspace_root().join("host/runtime/src")) {
        let source = std::fs::read_to_string(&file).expect("a readable source file");
        for (number, line) in source.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for module in logic_modules(line) {
                if !ALLOWED.contains(&module.as_str()) {
                    used.insert(format!(
                        "{}:{}: booking_logic::{module}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    assert!(
        used.is_empty(),
        "host/runtime may use only booking_logic::{{{}}}, it uses:\n  {}",
        ALLOWED.join(", "),
        used.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

/// The top-level modules of `booking_logic` a line of Rust names:
/// `booking_logic::ports::Seats` and `booking_logic::{model, ports}`.
fn logic_modules(line: &str) -> Vec<String> {
    let ident = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut modules = Vec::new();
    const PREFIX: &str = "booking_logic::";
    for (at, _) in line.match_indices(PREFIX) {
        let rest = &line[at + PREFIX.len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            modules.push(ident(item.trim()));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                modules.push(ident(item.trim()));
            }
            None => modules.push(ident(rest)),
        }
    }
    modules.retain(|module| !module.is_empty() && module != "self");
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn logic_modules_reads_paths_and_groups() {
    assert_eq!(
        logic_modules("use booking_logic::ports::{self, Seats};"),
        ["ports"]
    );
    assert_eq!(
        logic_modules("use booking_logic::{model::Booking, workflow::{Workflow}};"),
        ["model", "workflow"]
    );
    assert_eq!(
        logic_modules("fn f(x: booking_logic::model::Booking) -> booking_logic::schema::S"),
        ["model", "schema"]
    );
    assert!(logic_modules("use booking_adapters::seats;").is_empty());
}
