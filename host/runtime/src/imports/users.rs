//! `cinema:booking/users` → `ports::Users`.

use super::wit_error;
use crate::bindings::types::Error;
use crate::bindings::users::{Caller, Host, User};
use crate::state::RequestState;

impl Host for RequestState {
    async fn get_user(&mut self, user_id: String) -> Result<User, Error> {
        let user = self
            .ports
            .users
            .get_user(&user_id)
            .await
            .map_err(wit_error)?;
        Ok(User {
            id: user.id,
            name: user.name,
            email: user.email,
            active: user.active,
        })
    }

    async fn authenticate(&mut self, token: String) -> Result<Caller, Error> {
        let caller = self
            .ports
            .users
            .authenticate(&token)
            .await
            .map_err(wit_error)?;
        Ok(Caller {
            user_id: caller.user_id,
            roles: caller.roles,
            expires_at: caller.expires_at,
        })
    }
}
