//! Callers the User service vouched for recently, so that a burst of
//! requests with one token costs one round trip. Only positive answers are
//! kept (a rejected token is asked again next time, so a token that was
//! just issued works at once), each until the cache's TTL or the token's
//! own expiry, whichever comes first. The map is bounded: a flood of
//! distinct tokens evicts entries instead of growing it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use booking_logic::model::Caller;

pub(super) struct AuthCache {
    ttl: Duration,
    capacity: usize,
    /// By token; the caller and until when it may be served from here.
    entries: HashMap<String, (Caller, Instant)>,
}

impl AuthCache {
    /// A zero `ttl` or `capacity` caches nothing.
    pub(super) fn new(ttl: Duration, capacity: usize) -> AuthCache {
        AuthCache {
            ttl,
            capacity,
            entries: HashMap::new(),
        }
    }

    pub(super) fn get(&mut self, token: &str, now: Instant) -> Option<Caller> {
        match self.entries.get(token) {
            Some((caller, until)) if now < *until => Some(caller.clone()),
            Some(_) => {
                self.entries.remove(token);
                None
            }
            None => None,
        }
    }

    /// Keeps `caller` for at most the TTL and at most `token_valid_for`.
    pub(super) fn put(
        &mut self,
        token: &str,
        caller: &Caller,
        token_valid_for: Duration,
        now: Instant,
    ) {
        let keep = self.ttl.min(token_valid_for);
        if keep.is_zero() || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(token) {
            self.entries.retain(|_, (_, until)| now < *until);
            // Still full of live entries: drop the one that ends first.
            if self.entries.len() >= self.capacity {
                let first = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(token, _)| token.clone());
                if let Some(first) = first {
                    self.entries.remove(&first);
                }
            }
        }
        self.entries
            .insert(token.to_owned(), (caller.clone(), now + keep));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(user_id: &str) -> Caller {
        Caller {
            user_id: user_id.into(),
            roles: vec![],
            expires_at: 0,
        }
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn entries_last_the_ttl_or_the_token_whichever_is_shorter() {
        let start = Instant::now();
        let mut cache = AuthCache::new(Duration::from_secs(30), 10);
        cache.put("t1", &caller("u1"), LONG, start);
        cache.put("t2", &caller("u2"), Duration::from_secs(5), start);
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(
            cache.get("t1", at(29)).map(|c| c.user_id),
            Some("u1".into())
        );
        assert_eq!(cache.get("t2", at(4)).map(|c| c.user_id), Some("u2".into()));
        assert!(cache.get("t2", at(5)).is_none(), "the token expired");
        assert!(cache.get("t1", at(30)).is_none(), "the TTL passed");
        assert!(cache.get("t3", start).is_none());
        assert_eq!(cache.len(), 0, "expired entries are dropped when seen");
    }

    #[test]
    fn a_full_cache_evicts_expired_entries_then_the_one_ending_first() {
        let start = Instant::now();
        let mut cache = AuthCache::new(Duration::from_secs(30), 2);
        cache.put("short", &caller("u1"), Duration::from_secs(1), start);
        cache.put("long", &caller("u2"), LONG, start);
        cache.put("new", &caller("u3"), LONG, start + Duration::from_secs(2));
        assert_eq!(cache.len(), 2);
        let later = start + Duration::from_secs(3);
        assert!(cache.get("long", later).is_some());
        assert!(cache.get("new", later).is_some());

        // All live: the entry that ends first ("long", put earlier) goes.
        cache.put("newest", &caller("u4"), LONG, later);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("long", later).is_none());
        assert!(cache.get("new", later).is_some());
        assert!(cache.get("newest", later).is_some());
    }

    #[test]
    fn zero_ttl_or_capacity_caches_nothing() {
        let now = Instant::now();
        let mut off = AuthCache::new(Duration::ZERO, 10);
        off.put("t", &caller("u"), LONG, now);
        assert!(off.get("t", now).is_none());
        let mut none = AuthCache::new(Duration::from_secs(30), 0);
        none.put("t", &caller("u"), LONG, now);
        assert!(none.get("t", now).is_none());
    }
}
