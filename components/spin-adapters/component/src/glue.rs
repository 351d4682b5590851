//! WIT exports and the Spin/WASI calls behind them.

mod config;
mod http;
mod remote;
#[cfg(not(feature = "http-only"))]
mod store;

#[cfg(feature = "http-only")]
wit_bindgen::generate!({
    inline: "
        package cinema:spin-adapters;
        world http-only {
            export cinema:booking/types@0.1.0;
            export cinema:booking/seats@0.1.0;
            export cinema:booking/users@0.1.0;
            export cinema:booking/payments@0.1.0;
        }
    ",
    path: "../../../wit",
    world: "cinema:spin-adapters/http-only",
    generate_all,
});

#[cfg(not(feature = "http-only"))]
wit_bindgen::generate!({
    inline: "
        package cinema:spin-adapters;
        world spin {
            export cinema:booking/types@0.1.0;
            export cinema:booking/seats@0.1.0;
            export cinema:booking/users@0.1.0;
            export cinema:booking/payments@0.1.0;
            export cinema:booking/storage@0.1.0;
            export cinema:booking/events@0.1.0;
        }
    ",
    path: "../../../wit",
    world: "cinema:spin-adapters/spin",
    generate_all,
});

use exports::cinema::booking::types::Error as WitError;
use spin_adapters_core::Error;

pub(crate) fn wit_error(error: Error) -> WitError {
    match error {
        Error::NotFound(m) => WitError::NotFound(m),
        Error::Rejected(m) => WitError::Rejected(m),
        Error::Conflict(m) => WitError::Conflict(m),
        Error::Unavailable(m) => WitError::Unavailable(m),
        Error::Timeout(m) => WitError::Timeout(m),
    }
}

pub(crate) struct Adapters;

export!(Adapters);
