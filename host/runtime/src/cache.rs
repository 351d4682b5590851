//! Compiled components on disk, so start-up and swaps of a known component
//! skip Cranelift. An entry is keyed by the component's sha256 and by the
//! engine's compatibility hash: a different wasmtime or engine config never
//! reads another's artifact.
//!
//! An artifact is native code, so a file planted in the cache would run
//! unsandboxed in the host. Each one therefore starts with an HMAC-SHA256
//! tag over its name and bytes, checked before it is deserialized; a file
//! without a valid tag is recompiled. The key comes from the admin secret
//! (`ArtifactKey::derive`), not from a key file of its own: with
//! `ADMIN_TOKEN` in the environment nothing in the data directory lets
//! someone who can write it forge a tag; with a generated token the key
//! is as safe as that 0600 file, which a separate key file beside it would
//! be no safer than. Rotating the token recompiles each component once.

use std::collections::hash_map::DefaultHasher;
use std::fs::Metadata;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag in front of each artifact.
const TAG_BYTES: usize = 32;

/// The secret that vouches for cached artifacts.
pub struct ArtifactKey([u8; 32]);

impl ArtifactKey {
    /// A key of its own for the cache, so the admin secret itself is never
    /// used to tag files (domain separation).
    pub fn derive(admin_secret: &[u8]) -> ArtifactKey {
        let mut mac = HmacSha256::new_from_slice(admin_secret).expect("HMAC takes any key length");
        mac.update(b"booking-host component-cache artifact key v1");
        ArtifactKey(mac.finalize().into_bytes().into())
    }
}

/// Where compiled artifacts live, and the key their tags are made with.
pub struct CacheLocation {
    pub dir: PathBuf,
    pub key: ArtifactKey,
}

pub struct ArtifactCache {
    dir: PathBuf,
    key: ArtifactKey,
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

/// Whether this process's user owns the file and nobody else may write it:
/// the least a directory or file must be for us to trust what is in it.
pub fn writable_only_by_us(metadata: &Metadata) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let us = unsafe { libc::geteuid() };
    metadata.uid() == us && metadata.permissions().mode() & 0o022 == 0
}

impl ArtifactCache {
    /// Opens (or creates, 0700) the cache directory; refuses one that
    /// another user owns or that group or others may write.
    pub fn open(location: CacheLocation, engine: &Engine) -> anyhow::Result<ArtifactCache> {
        let dir = location.dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating the component cache {}", dir.display()))?;
        let metadata = std::fs::metadata(&dir)?;
        if !writable_only_by_us(&metadata) {
            anyhow::bail!(
                "refusing the component cache {}: it must belong to this user and not be group- or world-writable (chmod 700 it)",
                dir.display()
            );
        }
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir,
            key: location.key,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn name(&self, sha256: &str) -> String {
        format!("{sha256}-{}.cwasm", self.engine_key)
    }

    /// The tag binds the bytes to the name, so a valid artifact of another
    /// component renamed to this one's name is refused too.
    fn tag(&self, name: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key.0).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        mac.update(b"\n");
        mac.update(artifact);
        mac
    }

    /// The artifact stored under `name`, if it is there and its tag holds.
    fn read_verified(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .ok()?;
        let mut stored = Vec::new();
        if let Err(error) = file.read_to_end(&mut stored) {
            tracing::warn!(
                "ignoring unreadable cached artifact {}: {error}",
                path.display()
            );
            return None;
        }
        let verified = stored.len() > TAG_BYTES && {
            let (tag, artifact) = stored.split_at(TAG_BYTES);
            self.tag(name, artifact).verify_slice(tag).is_ok()
        };
        if !verified {
            tracing::warn!(
                "ignoring cached artifact {}: its integrity tag does not match (recompiling)",
                path.display()
            );
            return None;
        }
        stored.drain(..TAG_BYTES);
        Some(stored)
    }

    /// The compiled component for `bytes` (whose hash is `sha256`).
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256: &str,
    ) -> anyhow::Result<(Component, Compilation)> {
        let name = self.name(sha256);
        // Verified and deserialized from the same bytes in memory: the
        // file cannot change between the check and the load.
        if let Some(artifact) = self.read_verified(&name) {
            // SAFETY: the tag proves this process family wrote `artifact`
            // with `precompile_component` for this component and an engine
            // of this compatibility hash; wasmtime re-checks version and
            // config on load.
            match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok((component, Compilation::Cached)),
                Err(error) => tracing::warn!("ignoring cached artifact {name}: {error}"),
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        let mut stored = self.tag(&name, &artifact).finalize().into_bytes().to_vec();
        stored.extend_from_slice(&artifact);
        // Write then rename, so a crash never leaves a torn artifact.
        let path = self.dir.join(&name);
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &stored)?;
        std::fs::rename(&partial, &path)?;
        // SAFETY: `artifact` was produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, Compilation::Compiled))
    }
}
