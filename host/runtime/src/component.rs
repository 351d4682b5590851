//! A compiled, pre-linked booking component and the checks it passes before
//! it may serve: it must be a component (not a core module, not garbage),
//! not absurdly large, compile, have every import satisfied by the host,
//! and export both the HTTP handler and `maintenance`. Each failure says
//! precisely what is wrong.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::bindings::LogicPre;
use crate::cache::{ArtifactCache, Compilation};
use crate::state::RequestState;

/// Largest component accepted; ours is ~2 MB.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Why a candidate was refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("the file is {size} bytes; the limit is {MAX_COMPONENT_BYTES}")]
    TooLarge { size: usize },
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    #[error("a core WebAssembly module, not a component: build it for wasm32-wasip2")]
    CoreModule,
    #[error("does not compile: {0}")]
    Invalid(String),
    #[error("cannot be linked against this host: {0}")]
    Unlinkable(String),
    #[error("missing export: {0}")]
    MissingExport(String),
    #[error("failed its smoke query: {0}")]
    SmokeTestFailed(String),
    #[error("caching the compiled component failed: {0}")]
    Cache(String),
}

pub struct LogicComponent {
    /// Hex sha256 of the component bytes: the version's identity.
    pub sha256: String,
    pub size_bytes: usize,
    /// Where it came from, for people (a path, "upload", …).
    pub source: String,
    /// Milliseconds since the Unix epoch when it was loaded.
    pub loaded_at_ms: u64,
    /// Time to compile (or to read the cached artifact) and link.
    pub prepare_time: Duration,
    pub compilation: Compilation,
    /// The label the logic reports (`logicVersion`), learnt by the smoke query.
    pub label: OnceLock<String>,
    pub(crate) proxy_pre: ProxyPre<RequestState>,
    pub(crate) logic_pre: LogicPre<RequestState>,
}

impl LogicComponent {
    pub fn prepare(
        engine: &wasmtime::Engine,
        linker: &Linker<RequestState>,
        cache: Option<&ArtifactCache>,
        bytes: &[u8],
        source: impl Into<String>,
    ) -> Result<LogicComponent, Rejection> {
        check_envelope(bytes)?;
        let started = Instant::now();
        let sha256 = hex(&Sha256::digest(bytes));
        let (component, compilation) = match cache {
            Some(cache) => cache.component(engine, bytes, &sha256).map_err(|error| {
                if error.downcast_ref::<std::io::Error>().is_some() {
                    Rejection::Cache(format!("{error:#}"))
                } else {
                    Rejection::Invalid(format!("{error:#}"))
                }
            })?,
            None => (
                wasmtime::component::Component::new(engine, bytes)
                    .map_err(|e| Rejection::Invalid(format!("{e:#}")))?,
                Compilation::Compiled,
            ),
        };
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| Rejection::Unlinkable(format!("{e:#}")))?;
        let proxy_pre = ProxyPre::new(instance_pre.clone())
            .map_err(|e| Rejection::MissingExport(format!("wasi:http/incoming-handler: {e:#}")))?;
        let logic_pre = LogicPre::new(instance_pre)
            .map_err(|e| Rejection::MissingExport(format!("cinema:booking/maintenance: {e:#}")))?;
        Ok(LogicComponent {
            sha256,
            size_bytes: bytes.len(),
            source: source.into(),
            loaded_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
            prepare_time: started.elapsed(),
            compilation,
            label: OnceLock::new(),
            proxy_pre,
            logic_pre,
        })
    }

    /// Short form of the sha256 for logs and headers people read.
    pub fn short_id(&self) -> &str {
        &self.sha256[..12]
    }
}

/// Cheap checks before handing bytes to Cranelift.
fn check_envelope(bytes: &[u8]) -> Result<(), Rejection> {
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(Rejection::TooLarge { size: bytes.len() });
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Rejection::NotWasm);
    }
    // Bytes 6..8 are the layer: 0 for core modules, 1 for components.
    if bytes[6..8] == [0, 0] {
        return Err(Rejection::CoreModule);
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_check_names_what_is_wrong() {
        assert!(matches!(
            check_envelope(b"hello world"),
            Err(Rejection::NotWasm)
        ));
        assert!(matches!(check_envelope(b"\0asm"), Err(Rejection::NotWasm)));
        assert!(matches!(
            check_envelope(b"\0asm\x01\0\0\0"),
            Err(Rejection::CoreModule)
        ));
        assert!(check_envelope(b"\0asm\x0d\0\x01\0").is_ok());
        let huge = vec![0u8; MAX_COMPONENT_BYTES + 1];
        assert!(matches!(
            check_envelope(&huge),
            Err(Rejection::TooLarge { .. })
        ));
    }
}
