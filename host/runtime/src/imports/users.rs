//! `cinema:booking/users` → `ports::Users`.

use super::Answer;
use crate::bindings::types::Error;
use crate::bindings::users::{Caller, Host, User};
use crate::state::RequestState;

impl Host for RequestState {
    async fn get_user(&mut self, user_id: String) -> Result<User, Error> {
        self.call("users", "get_user", |ports| ports.users.get_user(&user_id))
            .await
            .answer()
    }

    async fn authenticate(&mut self, token: String) -> Result<Caller, Error> {
        self.call("users", "authenticate", |ports| {
            ports.users.authenticate(&token)
        })
        .await
        .answer()
    }
}
