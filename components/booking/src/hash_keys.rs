//! Fresh hash keys for every request of a pre-initialized instance.
//!
//! std's `RandomState` takes its SipHash keys from one per-thread pair,
//! seeded once from the host's randomness and then only counted up. The
//! pre-initializer runs `wizer-initialize` and ships the memory it leaves,
//! pair included, so without this every instance would hash with the same
//! keys, readable from the shipped file. The maps async-graphql builds per
//! request (variables, a document's fragments, validation's sets, the
//! response's fields) hold names the client chooses: with known keys a
//! client could make them collide.
//!
//! std offers no handle on the pair, so at initialization [`locate`]
//! finds it by its value, which two `RandomState`s reveal, and every
//! request [`renew`]s it from `wasi:random` and checks that
//! `RandomState::new()` now hands out the new keys.

use std::hash::RandomState;
use std::ptr;
use std::sync::OnceLock;

/// Where the pair lives, and which field of a `RandomState` is `k0`, the
/// half std counts up.
struct Location {
    k0_address: usize,
    k1_address: usize,
    k0_field: usize,
}

static LOCATION: OnceLock<Location> = OnceLock::new();

unsafe extern "C" {
    /// The end of the static data, placed by the linker.
    static __data_end: u8;
}

fn fields(state: RandomState) -> [u64; 2] {
    // SAFETY: `RandomState` is two `u64`s (`k0`, `k1`); the size is
    // checked at compile time and the field order is found by `locate`.
    unsafe { std::mem::transmute::<RandomState, [u64; 2]>(state) }
}

fn read(address: usize) -> u64 {
    // SAFETY: every 8-aligned address below `__data_end` is in linear
    // memory, which is never unmapped; reading it has no side effect.
    unsafe { ptr::read_volatile(ptr::with_exposed_provenance::<u64>(address)) }
}

/// Finds std's key pair in the static data. Runs in `wizer-initialize`
/// (again: nothing to do); panics, failing the build's
/// pre-initialization, unless exactly one place holds it.
pub fn locate() {
    if LOCATION.get().is_some() {
        return;
    }
    let first = fields(RandomState::new());
    let second = fields(RandomState::new());
    let k0_field = if second[0] == first[0].wrapping_add(1) && second[1] == first[1] {
        0
    } else if second[1] == first[1].wrapping_add(1) && second[0] == first[0] {
        1
    } else {
        panic!("hash keys: RandomState is not two counted keys");
    };
    // The pair now holds the next k0 and the same k1.
    let k0 = second[k0_field].wrapping_add(1);
    let k1 = second[1 - k0_field];
    let end = ptr::addr_of!(__data_end) as usize;
    let mut found = Vec::new();
    for address in (8..end.saturating_sub(8)).step_by(8) {
        match (read(address), read(address + 8)) {
            (a, b) if a == k0 && b == k1 => found.push((address, address + 8)),
            (a, b) if a == k1 && b == k0 => found.push((address + 8, address)),
            _ => {}
        }
    }
    let [(k0_address, k1_address)] = found[..] else {
        panic!(
            "hash keys: {} places hold std's key pair, expected one",
            found.len()
        );
    };
    let location = Location {
        k0_address,
        k1_address,
        k0_field,
    };
    assert!(LOCATION.set(location).is_ok(), "hash keys: located twice");
    renew().expect("hash keys: renewing at the located place");
}

/// Gives this instance keys of its own. Without [`locate`] (a component
/// that was not pre-initialized) std seeded them for this instance
/// already and nothing is to be done.
pub fn renew() -> Result<(), &'static str> {
    let Some(location) = LOCATION.get() else {
        return Ok(());
    };
    let k0 = wasip2::random::random::get_random_u64();
    let k1 = wasip2::random::random::get_random_u64();
    // SAFETY: `locate` found std's pair at these addresses, and nothing
    // else holds a reference into it while no map is being created.
    unsafe {
        ptr::write_volatile(
            ptr::with_exposed_provenance_mut::<u64>(location.k0_address),
            k0,
        );
        ptr::write_volatile(
            ptr::with_exposed_provenance_mut::<u64>(location.k1_address),
            k1,
        );
    }
    let handed_out = fields(RandomState::new());
    if handed_out[location.k0_field] == k0 && handed_out[1 - location.k0_field] == k1 {
        Ok(())
    } else {
        Err("the hash keys could not be renewed")
    }
}
