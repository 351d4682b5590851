//! WIT exports and the Spin/WASI calls behind them. The worlds are in
//! `wit/spin-adapters/`; every record, enum and error converts to and from
//! the model through `booking_model::wit_conversions!`, so a case added
//! to the WIT fails to compile here rather than fall back to a default.

mod config;
mod http;
mod remote;
#[cfg(not(feature = "http-only"))]
mod store;

#[cfg(feature = "http-only")]
wit_bindgen::generate!({
    path: ["../../../wit", "../../../wit/spin-adapters"],
    world: "cinema:spin-adapters/http-only",
    generate_all,
});

#[cfg(not(feature = "http-only"))]
wit_bindgen::generate!({
    path: ["../../../wit", "../../../wit/spin-adapters"],
    world: "cinema:spin-adapters/spin",
    generate_all,
});

#[cfg(feature = "http-only")]
booking_model::wit_conversions! {
    types: crate::glue::exports::cinema::booking::types,
    seats: crate::glue::exports::cinema::booking::seats,
    users: crate::glue::exports::cinema::booking::users,
    payments: crate::glue::exports::cinema::booking::payments,
}

#[cfg(not(feature = "http-only"))]
booking_model::wit_conversions! {
    types: crate::glue::exports::cinema::booking::types,
    seats: crate::glue::exports::cinema::booking::seats,
    users: crate::glue::exports::cinema::booking::users,
    payments: crate::glue::exports::cinema::booking::payments,
    storage: crate::glue::exports::cinema::booking::storage,
}

/// What every export returns: the model's error in WIT.
type WitResult<T> = Result<T, exports::cinema::booking::types::Error>;

/// `Ok(value)` in its WIT form, errors too.
fn wit<M: Into<W>, W>(result: booking_model::PortResult<M>) -> WitResult<W> {
    result.map(Into::into).map_err(Into::into)
}

/// The same for a list.
fn wit_list<M: Into<W>, W>(result: booking_model::PortResult<Vec<M>>) -> WitResult<Vec<W>> {
    wit(result.map(|items| items.into_iter().map(Into::into).collect::<Vec<W>>()))
}

pub(crate) struct Adapters;

export!(Adapters);
