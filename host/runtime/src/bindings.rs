//! Host-side bindings of the `logic` world (`wit/booking.wit`): the
//! booking imports and the `maintenance` export. The HTTP export comes from
//! `wasmtime-wasi-http`'s `ProxyPre`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "logic",
    imports: { default: async },
    exports: { default: async },
});

pub use cinema::booking::{events, payments, seats, storage, types, users};
