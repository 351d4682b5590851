//! Live updates: GraphQL subscriptions over WebSocket (`ws`,
//! graphql-transport-ws) and Server-Sent Events (`sse`, graphql-sse).
//! The host holds the connections; the logic decides (`booking_logic::live`
//! through `Runtime::start_subscription` / `Runtime::project`).
//!
//! Subscribers whose logic-given topic and projection are equal form a
//! [`Group`]: one task follows the host's [`Changes`], and for each batch
//! with events of its topic asks the logic once what they look like,
//! then hands the same message (one allocation) to every member. A member
//! holds at most `buffer` undelivered messages: one that cannot keep up
//! is dropped (`Ended::SlowConsumer`) rather than buffered without end;
//! after a gap in the feed every member is ended (`Ended::Gap`), and
//! clients start again from a fresh snapshot.
//!
//! Between a subscriber's start (its snapshot) and its joining the group,
//! events may pass: it listens to the feed from before its start, and the
//! group replays what it heard to it alone before anything newer. A
//! message shows states, not deltas, so one seen twice changes nothing.

pub(crate) mod sse;
pub(crate) mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use booking_adapters::changes::{Change, Changes};
use booking_model::{Event, Timestamp};
use booking_telemetry::metrics::{DropLabels, LiveMetrics};
use booking_telemetry::prometheus_client::metrics::counter::Counter;
use booking_telemetry::prometheus_client::metrics::family::Family;
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};

use crate::app::AppState;

/// How far subscriptions may go (`config.rs`: `SUBSCRIPTIONS_*`).
#[derive(Debug, Clone)]
pub struct LiveLimits {
    pub per_connection: usize,
    pub per_user: usize,
    /// Subscriptions on this host at once.
    pub max_subscribers: usize,
    /// Messages waiting for one subscriber before it counts as slow.
    pub buffer: usize,
    pub keepalive: Duration,
    /// A WebSocket client that sends nothing (not even a pong) this long
    /// is closed.
    pub idle: Duration,
    /// Time a WebSocket client has to send `connection_init`.
    pub init_timeout: Duration,
}

/// Why the host ended a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its queue was full: the client reads slower than changes come.
    SlowConsumer,
    /// Events may have been missed (the broker went away, the group fell
    /// behind the feed): what it shows may be stale.
    Gap,
}

/// Feed batches a group folds into one round of messages at most.
const MAX_BATCHES_PER_ROUND: usize = 256;

impl Ended {
    /// The metric's `reason` label.
    fn label(self) -> &'static str {
        match self {
            Ended::SlowConsumer => "slow_consumer",
            Ended::Gap => "gap",
        }
    }
}

/// A message for one subscriber: shared by the whole group.
pub type Message = Arc<str>;

pub struct Live {
    changes: Changes,
    metrics: LiveMetrics,
    /// Turns true at shutdown: every session closes.
    stopping: watch::Receiver<bool>,
    limits: LiveLimits,
    groups: Mutex<HashMap<(String, String), Arc<Group>>>,
    users: Mutex<HashMap<String, usize>>,
    subscribers: AtomicUsize,
    next_member: AtomicU64,
}

/// A refused subscription: GraphQL errors (a JSON array), each with
/// `extensions.code`.
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl Refused {
    fn new(code: &str, message: &str) -> Refused {
        Refused(json!([{ "message": message, "extensions": { "code": code } }]).to_string())
    }
}

/// A started subscription, held by its transport; dropping it leaves.
pub struct Subscription {
    /// The first messages (the snapshot).
    pub initial: Vec<Message>,
    /// Later messages; `None` when `initial` was all (a query). Closed
    /// when the host ends it (see `ended`).
    pub updates: Option<mpsc::Receiver<Message>>,
    pub ended: Arc<OnceLock<Ended>>,
    /// When the caller's token stops being valid.
    pub expires_at: Option<Timestamp>,
    membership: Option<Membership>,
}

struct Membership {
    live: Arc<Live>,
    group: Arc<Group>,
    id: u64,
    owner: Option<String>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.live.leave(&self.group, self.id, self.owner.as_deref());
    }
}

struct Group {
    key: (String, String),
    dropped: Family<DropLabels, Counter>,
    /// Subscriptions in it, joined or about to: kept under the groups'
    /// lock, so a group is removed only when no join is on its way.
    subscriptions: AtomicUsize,
    members: Mutex<Vec<Member>>,
    joins: mpsc::UnboundedSender<Join>,
    task: OnceLock<tokio::task::AbortHandle>,
}

struct Member {
    id: u64,
    sender: mpsc::Sender<Message>,
    ended: Arc<OnceLock<Ended>>,
}

/// A member about to join, with the feed as it heard it since before
/// its start.
struct Join {
    member: Member,
    heard: broadcast::Receiver<Change>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Live {
    pub fn new(
        changes: Changes,
        limits: LiveLimits,
        stopping: watch::Receiver<bool>,
        metrics: LiveMetrics,
    ) -> Live {
        Live {
            changes,
            metrics,
            stopping,
            limits,
            groups: Mutex::default(),
            users: Mutex::default(),
            subscribers: AtomicUsize::new(0),
            next_member: AtomicU64::new(1),
        }
    }

    /// Counts a subscriber the host dropped outside a group (its
    /// connection's own queue was full).
    pub fn count_drop(&self, why: Ended) {
        self.metrics
            .dropped
            .get_or_create(&DropLabels {
                reason: why.label(),
            })
            .inc();
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.clone()
    }

    pub fn limits(&self) -> &LiveLimits {
        &self.limits
    }

    /// Starts `request` (GraphQL JSON) for the caller behind `token`.
    pub async fn subscribe(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        request: &str,
        token: Option<&str>,
    ) -> Result<Subscription, Refused> {
        // Counted from now: concurrent starts cannot pass the cap together.
        if self.subscribers.fetch_add(1, Ordering::Relaxed) >= self.limits.max_subscribers {
            self.subscribers.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::new(
                "TOO_MANY_SUBSCRIPTIONS",
                &format!(
                    "this server holds at most {} subscriptions; retry later",
                    self.limits.max_subscribers
                ),
            ));
        }
        let started = self.start(state, request, token).await;
        if started
            .as_ref()
            .map_or(true, |subscription| subscription.membership.is_none())
        {
            self.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        started
    }

    async fn start(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        request: &str,
        token: Option<&str>,
    ) -> Result<Subscription, Refused> {
        let heard = self.changes.listen();
        let started = match state.runtime.start_subscription(request, token).await {
            Ok(Ok(started)) => started,
            Ok(Err(refusal)) => return Err(Refused(refusal)),
            Err(error) if error.is::<booking_runtime::Overloaded>() => {
                return Err(Refused::new(
                    "OVERLOADED",
                    "the server is busy; retry later",
                ));
            }
            Err(error) => {
                tracing::warn!("starting a subscription failed: {error:#}");
                return Err(Refused::new("INTERNAL", "the subscription could not start"));
            }
        };
        let initial = started.initial.into_iter().map(Message::from).collect();
        let Some(topic) = started.topic else {
            return Ok(Subscription {
                initial,
                updates: None,
                ended: Arc::default(),
                expires_at: started.expires_at,
                membership: None,
            });
        };
        if let Some(owner) = &started.owner {
            let mut users = lock(&self.users);
            let count = users.entry(owner.clone()).or_default();
            if *count >= self.limits.per_user {
                return Err(Refused::new(
                    "TOO_MANY_SUBSCRIPTIONS",
                    &format!(
                        "a user may hold at most {} subscriptions",
                        self.limits.per_user
                    ),
                ));
            }
            *count += 1;
        }
        let (sender, updates) = mpsc::channel(self.limits.buffer);
        let ended = Arc::new(OnceLock::new());
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let group = self.group(state, (topic, started.projection));
        self.metrics.subscriptions.inc();
        // A group's task stops taking joins only once it has no members,
        // when it is also out of the map: then a new group takes them.
        let _ = group.joins.send(Join {
            member: Member {
                id,
                sender,
                ended: ended.clone(),
            },
            heard,
        });
        Ok(Subscription {
            initial,
            updates: Some(updates),
            ended,
            expires_at: started.expires_at,
            membership: Some(Membership {
                live: self.clone(),
                group,
                id,
                owner: started.owner,
            }),
        })
    }

    /// The group of `key` (started if there is none), counting one more
    /// subscription in it.
    fn group(self: &Arc<Self>, state: &Arc<AppState>, key: (String, String)) -> Arc<Group> {
        let mut groups = lock(&self.groups);
        if let Some(group) = groups.get(&key) {
            group.subscriptions.fetch_add(1, Ordering::Relaxed);
            return group.clone();
        }
        let (joins, joining) = mpsc::unbounded_channel();
        let group = Arc::new(Group {
            key: key.clone(),
            dropped: self.metrics.dropped.clone(),
            subscriptions: AtomicUsize::new(1),
            members: Mutex::default(),
            joins,
            task: OnceLock::new(),
        });
        let task = tokio::spawn(follow(
            group.clone(),
            self.changes.listen(),
            joining,
            state.clone(),
        ));
        let _ = group.task.set(task.abort_handle());
        groups.insert(key, group.clone());
        group
    }

    fn leave(&self, group: &Arc<Group>, id: u64, owner: Option<&str>) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        self.metrics.subscriptions.dec();
        if let Some(owner) = owner {
            let mut users = lock(&self.users);
            if let Some(count) = users.get_mut(owner) {
                *count -= 1;
                if *count == 0 {
                    users.remove(owner);
                }
            }
        }
        lock(&group.members).retain(|member| member.id != id);
        let mut groups = lock(&self.groups);
        if group.subscriptions.fetch_sub(1, Ordering::Relaxed) == 1 {
            // The last one out: nobody watches this topic any more.
            if groups
                .get(&group.key)
                .is_some_and(|current| Arc::ptr_eq(current, group))
            {
                groups.remove(&group.key);
            }
            if let Some(task) = group.task.get() {
                task.abort();
            }
        }
    }
}

/// The group's task: replays to each joining member what it may have
/// missed, then projects each batch of its topic once for all members.
async fn follow(
    group: Arc<Group>,
    mut feed: broadcast::Receiver<Change>,
    mut joining: mpsc::UnboundedReceiver<Join>,
    state: Arc<AppState>,
) {
    let (topic, projection) = (&group.key.0, &group.key.1);
    loop {
        tokio::select! {
            biased;
            join = joining.recv() => {
                let Some(Join { member, mut heard }) = join else { return };
                let mut missed = Vec::new();
                let mut gap = false;
                loop {
                    match heard.try_recv() {
                        Ok(Change::Events(events)) => missed.extend(of_topic(topic, &events)),
                        Ok(Change::Gap) | Err(broadcast::error::TryRecvError::Lagged(_)) => gap = true,
                        Err(_) => break,
                    }
                }
                if gap {
                    group.end(&member, Ended::Gap);
                    continue;
                }
                if !missed.is_empty() {
                    match project(&state, projection, &missed).await {
                        Some(messages) => {
                            for message in messages {
                                if !group.deliver(&member, &message) {
                                    break;
                                }
                            }
                        }
                        None => group.end(&member, Ended::Gap),
                    }
                }
                if member.ended.get().is_none() {
                    lock(&group.members).push(member);
                }
            }
            change = feed.recv() => {
                let mut events = match change {
                    Ok(Change::Events(events)) => of_topic(topic, &events),
                    Ok(Change::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        for member in lock(&group.members).drain(..) {
                            group.end(&member, Ended::Gap);
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // What came meanwhile joins this batch: under load (a flash
                // sale) members get one message per round, not one per
                // booking, at no cost in latency when it is quiet.
                let mut gap = false;
                for _ in 0..MAX_BATCHES_PER_ROUND {
                    match feed.try_recv() {
                        Ok(Change::Events(more)) => events.extend(of_topic(topic, &more)),
                        Ok(Change::Gap) | Err(broadcast::error::TryRecvError::Lagged(_)) => {
                            gap = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if gap {
                    for member in lock(&group.members).drain(..) {
                        group.end(&member, Ended::Gap);
                    }
                    continue;
                }
                if events.is_empty() || lock(&group.members).is_empty() {
                    continue;
                }
                let Some(messages) = project(&state, projection, &events).await else {
                    for member in lock(&group.members).drain(..) {
                        group.end(&member, Ended::Gap);
                    }
                    continue;
                };
                for message in messages {
                    lock(&group.members).retain(|member| group.deliver(member, &message));
                }
            }
        }
    }
}

/// Resolves when a token that expires at `expires_at` has expired
/// (never without one).
async fn expiry(expires_at: Option<Timestamp>) {
    let Some(expires_at) = expires_at else {
        return std::future::pending().await;
    };
    let now = booking_adapters::outbox::now_ms();
    tokio::time::sleep(Duration::from_millis(expires_at.saturating_sub(now))).await;
}

/// The last message of a subscription whose caller's token expired.
fn token_expired() -> String {
    json!({ "errors": [{
        "message": "the token expired: sign in again and subscribe again",
        "extensions": { "code": "UNAUTHENTICATED" },
    }]})
    .to_string()
}

/// What `events` look like to the group; `None` if the logic could not
/// say (its members missed a change, so they end with a gap).
async fn project(state: &AppState, projection: &str, events: &[Event]) -> Option<Vec<Message>> {
    match state.runtime.project(projection, events).await {
        Ok(messages) => Some(messages.into_iter().map(Message::from).collect()),
        Err(error) => {
            tracing::warn!(
                "projecting {} event(s) for subscribers failed: {error:#}",
                events.len()
            );
            None
        }
    }
}

impl Group {
    /// Hands `message` to `member`; false when it is gone or just ended.
    fn deliver(&self, member: &Member, message: &Message) -> bool {
        match member.sender.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.end(member, Ended::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Marks why; its transport sees the queue close after what it holds.
    fn end(&self, member: &Member, why: Ended) {
        if member.ended.set(why).is_ok() {
            self.dropped
                .get_or_create(&DropLabels {
                    reason: why.label(),
                })
                .inc();
        }
    }
}

/// The events of `topic`: a showtime's or a booking's.
fn of_topic(topic: &str, events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter(|event| match topic.split_once(':') {
            Some(("showtime", id)) => event.showtime_id == id,
            Some(("booking", id)) => event.booking_id == id,
            _ => false,
        })
        .cloned()
        .collect()
}
