//! Pre-initialization (`booking-host preinit`): runs a component's
//! `wizer-initialize` export once and writes a component whose memory
//! starts where that call left it (wasmtime-wizer). The booking component
//! builds its GraphQL schema there, so no request builds it again. The
//! export stays (wizer 48 drops the core function but not the
//! component's lift of it when both have the same name, which leaves an
//! invalid component); calling it again does nothing.
//!
//! The initializer runs with WASI and nothing of the machine: no
//! environment, no arguments, no files, no network (WASI-HTTP denies
//! every request), so nothing of the build machine ends up in the
//! component; the booking imports trap if called. What
//! an instance must not share with every other — its hash keys — the
//! component renews per request (`components/booking/src/hash_keys.rs`).
//!
//! wizer's own wasmtime glue would switch on wasmtime features the host
//! does not use (and so rebuild wasmtime); [`Instance`] below is the
//! small part of it this needs, over the host's wasmtime.

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Instance as ComponentInstance, Lift, Linker, WasmList};
use wasmtime::error::Context as _;
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::state::SandboxHttpHooks;

/// The export the component initializes itself with (wizer's default).
pub const INIT_EXPORT: &str = "wizer-initialize";

struct InitState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    no_network: SandboxHttpHooks,
    table: ResourceTable,
}

impl WasiView for InitState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InitState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.no_network,
        }
    }
}

/// Runs `wasm`'s `wizer-initialize` and returns the pre-initialized
/// component.
pub async fn preinitialize(wasm: &[u8]) -> anyhow::Result<Vec<u8>> {
    let engine = Engine::new(&Config::new())?;
    let mut wizer = Wizer::new();
    wizer.keep_init_func(true);
    let (context, instrumented) = wizer
        .instrument_component(wasm)
        .context("instrumenting the component")?;
    let component = Component::new(&engine, &instrumented)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    trap_booking_imports(&mut linker, &component)?;
    let mut store = Store::new(
        &engine,
        InitState {
            wasi: deterministic_wasi(),
            http: WasiHttpCtx::new(),
            no_network: SandboxHttpHooks::default(),
            table: ResourceTable::new(),
        },
    );
    let instance = linker.instantiate_async(&mut store, &component).await?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
        .with_context(|| format!("the component exports no `{INIT_EXPORT}: func()`"))?;
    init.call_async(&mut store, ())
        .await
        .with_context(|| format!("`{INIT_EXPORT}` failed"))?;
    let mut state = Instance {
        store: &mut store,
        instance,
    };
    Ok(wizer
        .snapshot_component(&context, &mut state)
        .await
        .context("snapshotting the initialized component")?)
}

/// WASI for the initializer. Its randomness is a fixed sequence, so the
/// same component always pre-initializes to the same bytes (and the same
/// sha256, the component's identity). Whatever the initializer draws ends
/// up public in the shipped file either way; the one thing that draws it,
/// std's hash keys, is renewed per request.
fn deterministic_wasi() -> WasiCtx {
    WasiCtx::builder()
        .secure_random(StdRng::seed_from_u64(0))
        .insecure_random(StdRng::seed_from_u64(1))
        .insecure_random_seed(0)
        .build()
}

/// Defines every function of the booking interfaces the component imports
/// as a trap: initialization runs the logic's set-up only, never a port.
/// (wasmtime's `define_unknown_imports_as_traps` would also stub WASI
/// interfaces the linker has under another patch version, with resource
/// types of its own.)
fn trap_booking_imports(
    linker: &mut Linker<InitState>,
    component: &Component,
) -> wasmtime::Result<()> {
    let engine = component.engine();
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(interface) = item.ty else {
            continue;
        };
        if !name.starts_with("cinema:booking/") {
            continue;
        }
        let mut instance = linker.instance(name)?;
        for (function, item) in interface.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let called = format!("{name}#{function}");
                instance.func_new(function, move |_, _, _, _| {
                    wasmtime::bail!("`{called}` called during pre-initialization")
                })?;
            }
        }
    }
    Ok(())
}

/// The initialized instance, as wizer reads its state: through the
/// accessor functions its instrumentation exported.
struct Instance<'a> {
    store: &'a mut Store<InitState>,
    instance: ComponentInstance,
}

impl Instance<'_> {
    async fn call<R: Lift + Send + Sync + 'static>(&mut self, instance: &str, func: &str) -> R {
        let (_, exported) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's instrumentation exports this instance");
        let (_, func) = self
            .instance
            .get_export(&mut *self.store, Some(&exported), func)
            .expect("wizer's instrumentation exports this accessor");
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, func)
            .expect("wizer's accessors have this type");
        func.call_async(&mut *self.store, ())
            .await
            .expect("wizer's accessors do not trap")
            .0
    }
}

impl ComponentInstanceState for Instance<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func).await;
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).await.to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).await.to_bits()
    }
}
