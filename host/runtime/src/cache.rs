//! Compiled components on disk, so start-up and swaps of a known component
//! skip Cranelift. An entry is keyed by the component's sha256 and by the
//! engine's compatibility hash: a different wasmtime or engine config never
//! reads another's artifact.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

pub struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compilation {
    /// Compiled now (and stored for next time).
    Compiled,
    /// Deserialized from the cache.
    Cached,
}

impl ArtifactCache {
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<ArtifactCache> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes` (whose hash is `sha256`).
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> anyhow::Result<(Component, Compilation)> {
        let path = self.path(sha256);
        if path.exists() {
            // SAFETY: the file is one this process family wrote with
            // `precompile_component` for an engine with the same
            // compatibility hash (it is in the name), inside our own data
            // directory; wasmtime re-checks version and config on load.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Compilation::Cached)),
                Err(error) => tracing::warn!(
                    "ignoring unreadable cached artifact {}: {error}",
                    path.display()
                ),
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        // Write then rename, so a crash never leaves a torn artifact.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &artifact)?;
        std::fs::rename(&partial, &path)?;
        // SAFETY: `artifact` was produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, Compilation::Compiled))
    }
}
