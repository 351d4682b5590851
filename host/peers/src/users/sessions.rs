//! The bearer tokens the User service issued: random, kept server-side
//! with their expiry, revocable. One mutex guards the map; nothing awaits
//! while holding it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Expired sessions are dropped in bulk once the map reaches this size
/// (then twice the size it had left), so logins stay amortised O(1).
const FIRST_PURGE_AT: usize = 1024;

/// Whom a token stands for, until when (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub expires_at_ms: u64,
}

struct Inner {
    by_token: HashMap<String, Session>,
    purge_at: usize,
}

#[derive(Clone)]
pub struct Sessions {
    ttl: Duration,
    inner: Arc<Mutex<Inner>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            inner: Arc::new(Mutex::new(Inner {
                by_token: HashMap::new(),
                purge_at: FIRST_PURGE_AT,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is a single map operation: nothing half-done to see.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new token for `user_id`, valid for the TTL from `now_ms`.
    pub fn issue(&self, user_id: &str, now_ms: u64) -> (String, Session) {
        // Two v4 UUIDs: 244 random bits, unguessable.
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let session = Session {
            user_id: user_id.to_owned(),
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        let mut inner = self.lock();
        if inner.by_token.len() >= inner.purge_at {
            inner
                .by_token
                .retain(|_, session| now_ms < session.expires_at_ms);
            inner.purge_at = FIRST_PURGE_AT.max(inner.by_token.len() * 2);
        }
        inner.by_token.insert(token.clone(), session.clone());
        (token, session)
    }

    /// The session behind a token that is known and not expired.
    pub fn check(&self, token: &str, now_ms: u64) -> Option<Session> {
        self.lock()
            .by_token
            .get(token)
            .filter(|session| now_ms < session.expires_at_ms)
            .cloned()
    }

    /// Forgets the token; true if it was known.
    pub fn revoke(&self, token: &str) -> bool {
        self.lock().by_token.remove(token).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_expire_and_can_be_revoked() {
        let sessions = Sessions::new(Duration::from_secs(10));
        let (token, session) = sessions.issue("user_123", 1_000);
        let (other, _) = sessions.issue("user_123", 1_000);
        assert_ne!(token, other);
        assert_eq!(token.len(), 64);
        assert_eq!(session.expires_at_ms, 11_000);
        assert_eq!(sessions.check(&token, 10_999), Some(session));
        assert_eq!(sessions.check(&token, 11_000), None, "expired");
        assert_eq!(sessions.check("forged", 1_000), None);
        assert!(sessions.revoke(&token));
        assert!(!sessions.revoke(&token));
        assert_eq!(sessions.check(&token, 1_000), None);
        assert!(sessions.check(&other, 1_000).is_some());
    }

    #[test]
    fn expired_sessions_do_not_pile_up() {
        let sessions = Sessions::new(Duration::from_millis(1));
        for n in 0..10 * FIRST_PURGE_AT as u64 {
            sessions.issue("user_123", n * 10);
        }
        assert!(sessions.len() <= FIRST_PURGE_AT, "{}", sessions.len());
    }
}
