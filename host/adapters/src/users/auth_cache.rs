//! The User service's recent answers about tokens, so that a burst of
//! requests with one token costs one round trip. A valid token is kept
//! until the cache's TTL or the token's own expiry, whichever comes
//! first; a rejected one for `REJECTED_TTL` (or the TTL if shorter), so a
//! client repeating a bad token does not reach the User service with each
//! request. The map is bounded: a flood of distinct tokens evicts entries
//! instead of growing it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use booking_model::Caller;

/// How long a rejected token is answered from here: short, because a
/// rejection may have been the service's hiccup.
pub(super) const REJECTED_TTL: Duration = Duration::from_secs(5);

/// What the User service said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    Valid(Caller),
    Rejected,
}

pub(super) struct AuthCache {
    ttl: Duration,
    capacity: usize,
    /// By token; the answer and until when it may be served from here.
    entries: HashMap<String, (Answer, Instant)>,
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

    pub(super) fn get(&mut self, token: &str, now: Instant) -> Option<Answer> {
        match self.entries.get(token) {
            Some((answer, until)) if now < *until => Some(answer.clone()),
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
        self.keep(token, Answer::Valid(caller.clone()), token_valid_for, now);
    }

    /// Keeps the rejection of `token` for at most `REJECTED_TTL`.
    pub(super) fn put_rejected(&mut self, token: &str, now: Instant) {
        self.keep(token, Answer::Rejected, REJECTED_TTL, now);
    }

    fn keep(&mut self, token: &str, answer: Answer, at_most: Duration, now: Instant) {
        let keep = self.ttl.min(at_most);
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
        self.entries.insert(token.to_owned(), (answer, now + keep));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_of(answer: Option<Answer>) -> Option<String> {
        match answer {
            Some(Answer::Valid(caller)) => Some(caller.user_id),
            _ => None,
        }
    }

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
        assert_eq!(user_of(cache.get("t1", at(29))), Some("u1".into()));
        assert_eq!(user_of(cache.get("t2", at(4))), Some("u2".into()));
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
    fn rejections_are_kept_briefly_in_the_same_bounded_map() {
        let start = Instant::now();
        let mut cache = AuthCache::new(Duration::from_secs(30), 2);
        cache.put_rejected("bad", start);
        assert_eq!(
            cache.get("bad", start + REJECTED_TTL / 2),
            Some(Answer::Rejected)
        );
        assert_eq!(cache.get("bad", start + REJECTED_TTL), None);

        let mut short = AuthCache::new(Duration::from_secs(1), 2);
        short.put_rejected("bad", start);
        assert_eq!(
            short.get("bad", start + Duration::from_secs(1)),
            None,
            "TTL"
        );

        for n in 0..100 {
            cache.put_rejected(&format!("flood-{n}"), start);
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn zero_ttl_or_capacity_caches_nothing() {
        let now = Instant::now();
        let mut off = AuthCache::new(Duration::ZERO, 10);
        off.put("t", &caller("u"), LONG, now);
        off.put_rejected("r", now);
        assert!(off.get("t", now).is_none());
        assert!(off.get("r", now).is_none());
        let mut none = AuthCache::new(Duration::from_secs(30), 0);
        none.put("t", &caller("u"), LONG, now);
        assert!(none.get("t", now).is_none());
    }
}
