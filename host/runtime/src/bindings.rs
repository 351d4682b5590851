//! Host-side bindings of the `logic` world (`wit/booking.wit`): the
//! booking imports and the `maintenance` export. The HTTP export comes from
//! `wasmtime-wasi-http`'s `ProxyPre`. The conversions to and from the
//! model are generated (`booking_model::wit_conversions!`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "logic",
    imports: { default: async },
    exports: { default: async },
});

pub use cinema::booking::{events, payments, seats, storage, types, users};

booking_model::wit_conversions! {
    types: crate::bindings::types,
    seats: crate::bindings::seats,
    users: crate::bindings::users,
    payments: crate::bindings::payments,
    storage: crate::bindings::storage,
    maintenance: crate::bindings::exports::cinema::booking::maintenance,
}
