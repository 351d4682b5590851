//! The `users` port: the User service's users, and bearer tokens that
//! expire against the shared clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Knobs, Op, lock};
use crate::model::{Caller, Timestamp, User};
use crate::ports::{Environment, PortError, PortResult, Users};

#[derive(Default)]
struct UsersState {
    users: HashMap<String, User>,
    /// Bearer tokens issued, and whom each stands for until when.
    tokens: HashMap<String, Caller>,
    next_token: u64,
}

/// The User service: users, and bearer tokens that expire against the
/// shared clock (invalid from the instant `now >= expires_at`).
pub struct FakeUsers {
    env: Arc<dyn Environment>,
    knobs: Arc<Knobs>,
    state: Mutex<UsersState>,
}

impl FakeUsers {
    pub fn new(env: Arc<dyn Environment>, knobs: Arc<Knobs>) -> FakeUsers {
        FakeUsers {
            env,
            knobs,
            state: Mutex::default(),
        }
    }

    pub fn add_user(&self, id: &str, active: bool) {
        lock(&self.state).users.insert(
            id.to_string(),
            User {
                id: id.to_string(),
                name: format!("User {id}"),
                email: format!("{id}@example.com"),
                active,
            },
        );
    }

    /// A new token standing for `user_id` with `roles` until `expires_at`.
    /// Like the real service's tokens it does not reveal whose it is.
    pub fn issue_token(&self, user_id: &str, roles: &[&str], expires_at: Timestamp) -> String {
        let mut state = lock(&self.state);
        state.next_token += 1;
        let token = format!("fake-token-{}", state.next_token);
        state.tokens.insert(
            token.clone(),
            Caller {
                user_id: user_id.to_string(),
                roles: roles.iter().map(|role| role.to_string()).collect(),
                expires_at,
            },
        );
        token
    }
}

#[async_trait]
impl Users for FakeUsers {
    async fn get_user(&self, user_id: &str) -> PortResult<User> {
        self.knobs
            .run(Op::GetUser, || {
                lock(&self.state)
                    .users
                    .get(user_id)
                    .cloned()
                    .ok_or_else(|| PortError::NotFound(format!("user {user_id}")))
            })
            .await
    }

    async fn authenticate(&self, token: &str) -> PortResult<Caller> {
        self.knobs
            .run(Op::Authenticate, || {
                let now = self.env.now();
                match lock(&self.state).tokens.get(token) {
                    Some(caller) if now < caller.expires_at => Ok(caller.clone()),
                    Some(_) => Err(PortError::Rejected("token expired".into())),
                    None => Err(PortError::Rejected("unknown token".into())),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use crate::ports::{PortError, Users};
    use crate::testing::{Fakes, Op};

    #[test]
    fn tokens_stand_for_their_caller_until_they_expire() {
        let fakes = Fakes::new(1_000);
        let token = fakes.users.issue_token("support_1", &["support"], 2_000);
        let other = fakes.users.issue_token("user_123", &[], 2_000);
        assert_ne!(token, other);

        let caller = block_on(fakes.users.authenticate(&token)).unwrap();
        assert_eq!(caller.user_id, "support_1");
        assert_eq!(caller.roles, vec!["support".to_string()]);
        assert_eq!(caller.expires_at, 2_000);

        assert!(matches!(
            block_on(fakes.users.authenticate("forged")),
            Err(PortError::Rejected(_))
        ));
        fakes.env.set_now(2_000);
        assert!(matches!(
            block_on(fakes.users.authenticate(&token)),
            Err(PortError::Rejected(_))
        ));
        assert_eq!(fakes.knobs.calls(Op::Authenticate), 3);
    }
}
