//! A compiled, pre-linked booking component. Validation happens here, once:
//! every import must be satisfied by the host and both exports (the HTTP
//! handler and `maintenance`) must be present, or loading fails with
//! wasmtime's message naming what is missing.

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::bindings::LogicPre;
use crate::state::RequestState;

pub struct LogicComponent {
    /// Hex sha256 of the component bytes: the version's identity.
    pub sha256: String,
    pub size_bytes: usize,
    /// Where it came from (a path, for people).
    pub source: String,
    pub(crate) proxy_pre: ProxyPre<RequestState>,
    pub(crate) logic_pre: LogicPre<RequestState>,
}

impl LogicComponent {
    pub fn compile(
        engine: &wasmtime::Engine,
        linker: &Linker<RequestState>,
        bytes: &[u8],
        source: impl Into<String>,
    ) -> anyhow::Result<LogicComponent> {
        let source = source.into();
        let sha256 = hex(&Sha256::digest(bytes));
        let component = Component::new(engine, bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{source} is not a valid component"))?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{source} imports something the host does not provide"))?;
        let proxy_pre = ProxyPre::new(instance_pre.clone())
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{source} does not export wasi:http/incoming-handler"))?;
        let logic_pre = LogicPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{source} does not export cinema:booking/maintenance"))?;
        Ok(LogicComponent {
            sha256,
            size_bytes: bytes.len(),
            source,
            proxy_pre,
            logic_pre,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
