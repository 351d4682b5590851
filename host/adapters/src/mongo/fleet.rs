//! The fleet's shared deployment: when several hosts share one MongoDB,
//! which logic versions all of them serve is one record here, changed
//! through any replica's admin API and followed by every replica.
//!
//! - `logicDeployment`: one document, the desired deployment (active,
//!   previous, canary and its share, the candidates every replica keeps
//!   loaded), with a `revision` that every change compares and increments,
//!   so two admin calls on two replicas cannot both win.
//! - `logicComponents` + `logicComponentChunks`: each version's bytes, by
//!   sha256, in chunks well below MongoDB's 16 MiB document limit; the
//!   manifest is written after its chunks, so a manifest means the whole
//!   component is there. Readers check the bytes' sha256 themselves.
//! - `logicReplicas`: what each replica serves now, reported every poll,
//!   for `admin list` and for an admin change to wait on.
//!
//! Flat documents only (strings, numbers, arrays of strings): nx-27017
//! mangles subdocuments in arrays and stores no binary.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::TryStreamExt;
use mongodb::Collection;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};

use booking_logic::ports::{PortError, PortResult};

use crate::mongo::{MongoDatabase, Operation};

const DEPLOYMENT: &str = "logicDeployment";
const COMPONENTS: &str = "logicComponents";
const CHUNKS: &str = "logicComponentChunks";
const REPLICAS: &str = "logicReplicas";

/// The `_id` of the one deployment document.
const DEPLOYMENT_ID: &str = "fleet";

/// Bytes per chunk of a stored component (base64 makes 5.3 MiB of it).
const CHUNK_BYTES: usize = 4 << 20;

/// A replica not heard from for this long is forgotten.
const FORGET_REPLICA_MS: i64 = 60 * 60 * 1000;

/// The deployment every replica converges on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetDeployment {
    /// Incremented by every change; 1 for the first.
    pub revision: i64,
    /// sha256 of each version.
    pub active: String,
    pub previous: Option<String>,
    pub canary: Option<String>,
    /// The canary's share of requests, 0..=100 (0 without a canary).
    pub canary_percent: i32,
    /// Uploaded versions every replica loads ahead of their activation,
    /// oldest first.
    pub candidates: Vec<String>,
    /// The replica whose admin API made the change, and when.
    pub changed_by: String,
    pub changed_at_ms: i64,
    /// HMAC-SHA256 (hex) of the fields above, keyed from the fleet's
    /// admin token: replicas follow no record without it.
    #[serde(default)]
    pub tag: String,
}

/// What one replica serves, as it last reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    #[serde(rename = "_id")]
    pub replica: String,
    /// The revision of the fleet deployment it serves.
    pub revision: i64,
    pub active: String,
    pub previous: Option<String>,
    pub canary: Option<String>,
    pub canary_percent: i32,
    /// Every version it has loaded (sha256).
    pub loaded: Vec<String>,
    pub seen_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentDocument {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    deployment: FleetDeployment,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentManifest {
    #[serde(rename = "_id")]
    sha256: String,
    chunks: i64,
    size_bytes: i64,
    source: String,
    stored_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentChunk {
    /// `<sha256>/<index>`.
    #[serde(rename = "_id")]
    id: String,
    sha256: String,
    index: i64,
    /// Base64: nx-27017 stores no BSON binary.
    data: String,
}

#[derive(Clone)]
pub struct MongoFleet {
    db: MongoDatabase,
    deployment: Collection<DeploymentDocument>,
    components: Collection<ComponentManifest>,
    chunks: Collection<ComponentChunk>,
    replicas: Collection<ReplicaStatus>,
}

impl MongoFleet {
    pub fn open(db: MongoDatabase) -> MongoFleet {
        MongoFleet {
            deployment: db.collection(DEPLOYMENT),
            components: db.collection(COMPONENTS),
            chunks: db.collection(CHUNKS),
            replicas: db.collection(REPLICAS),
            db,
        }
    }

    /// The desired deployment; `None` before the first replica wrote it.
    pub async fn deployment(&self) -> PortResult<Option<FleetDeployment>> {
        let found = self
            .db
            .run(
                Operation::Read,
                self.deployment.find_one(doc! { "_id": DEPLOYMENT_ID }),
            )
            .await?;
        Ok(found.map(|document| document.deployment))
    }

    /// Stores `next` if the stored deployment is still at `expected`'s
    /// revision (`None`: there is none yet). False if another change came
    /// first: read it again and decide again.
    pub async fn replace(&self, expected: Option<i64>, next: &FleetDeployment) -> PortResult<bool> {
        let document = DeploymentDocument {
            id: DEPLOYMENT_ID.to_owned(),
            deployment: next.clone(),
        };
        let stored = match expected {
            None => self
                .db
                .run(Operation::Write, self.deployment.insert_one(document))
                .await
                .map(|_| true),
            Some(revision) => self
                .db
                .run(
                    Operation::Write,
                    self.deployment.replace_one(
                        doc! { "_id": DEPLOYMENT_ID, "revision": revision },
                        document,
                    ),
                )
                .await
                .map(|result| result.matched_count == 1),
        };
        match stored {
            Err(PortError::Conflict(_)) => Ok(false),
            other => other,
        }
    }

    /// Stores a component's bytes under its sha256 (once: a stored one is
    /// left as it is).
    pub async fn store_component(
        &self,
        sha256: &str,
        bytes: &[u8],
        source: &str,
        now_ms: i64,
    ) -> PortResult<()> {
        if self.manifest(sha256).await?.is_some() {
            return Ok(());
        }
        let mut chunks = 0;
        for (index, data) in bytes.chunks(CHUNK_BYTES).enumerate() {
            let id = format!("{sha256}/{index}");
            let chunk = ComponentChunk {
                id: id.clone(),
                sha256: sha256.to_owned(),
                index: index as i64,
                data: BASE64.encode(data),
            };
            self.db
                .run(
                    Operation::Write,
                    self.chunks
                        .replace_one(doc! { "_id": id }, chunk)
                        .upsert(true),
                )
                .await?;
            chunks += 1;
        }
        let manifest = ComponentManifest {
            sha256: sha256.to_owned(),
            chunks,
            size_bytes: bytes.len() as i64,
            source: source.to_owned(),
            stored_at_ms: now_ms,
        };
        match self
            .db
            .run(Operation::Write, self.components.insert_one(manifest))
            .await
        {
            // Another replica stored the same bytes first.
            Err(PortError::Conflict(_)) => Ok(()),
            other => other.map(drop),
        }
    }

    /// A stored component's bytes and source, or `None` if not stored.
    pub async fn component(&self, sha256: &str) -> PortResult<Option<(Vec<u8>, String)>> {
        let Some(manifest) = self.manifest(sha256).await? else {
            return Ok(None);
        };
        let chunks: Vec<ComponentChunk> = self
            .db
            .run(Operation::Read, async {
                self.chunks
                    .find(doc! { "sha256": sha256 })
                    .sort(doc! { "index": 1 })
                    .await?
                    .try_collect()
                    .await
            })
            .await?;
        let in_order = chunks
            .iter()
            .enumerate()
            .all(|(n, chunk)| chunk.index == n as i64);
        if chunks.len() as i64 != manifest.chunks || !in_order {
            return Err(PortError::Unavailable(format!(
                "database: component {sha256} has {} of its {} chunks",
                chunks.len(),
                manifest.chunks
            )));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(manifest.size_bytes).unwrap_or(0));
        for chunk in chunks {
            BASE64
                .decode_vec(&chunk.data, &mut bytes)
                .map_err(|error| {
                    PortError::Unavailable(format!(
                        "database: a chunk of component {sha256}: {error}"
                    ))
                })?;
        }
        Ok(Some((bytes, manifest.source)))
    }

    async fn manifest(&self, sha256: &str) -> PortResult<Option<ComponentManifest>> {
        self.db
            .run(
                Operation::Read,
                self.components.find_one(doc! { "_id": sha256 }),
            )
            .await
    }

    /// Records what a replica serves now, and forgets replicas silent for
    /// an hour.
    pub async fn report(&self, status: &ReplicaStatus) -> PortResult<()> {
        self.db
            .run(
                Operation::Write,
                self.replicas
                    .replace_one(doc! { "_id": &status.replica }, status)
                    .upsert(true),
            )
            .await?;
        self.db
            .run(
                Operation::Write,
                self.replicas.delete_many(
                    doc! { "seenAtMs": { "$lt": status.seen_at_ms - FORGET_REPLICA_MS } },
                ),
            )
            .await
            .map(drop)
    }

    /// Every replica's last report, by name.
    pub async fn replicas(&self) -> PortResult<Vec<ReplicaStatus>> {
        self.db
            .run(Operation::Read, async {
                self.replicas
                    .find(doc! {})
                    .sort(doc! { "_id": 1 })
                    .await?
                    .try_collect()
                    .await
            })
            .await
    }
}
