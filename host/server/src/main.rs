//! `booking-host`: the booking service's native host.

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(booking_host::main())
}

/// glibc gives every thread that allocates while others hold the arenas
/// an arena of its own, up to 8 per core, and keeps what they free: under
/// 256 concurrent requests (tokio's workers and its blocking threads for
/// SQLite) that was a third of the host's memory. One arena per core
/// (BENCHMARKS.md, "Memory at 256 clients"). Set before any thread starts.
#[cfg(target_env = "gnu")]
fn limit_malloc_arenas() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter; no other thread
    // exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other C libraries' allocators have no such arenas.
#[cfg(not(target_env = "gnu"))]
fn limit_malloc_arenas() {}
