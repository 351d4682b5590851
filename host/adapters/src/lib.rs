//! Real implementations of the booking logic's ports, one module per WIT
//! interface, each the same shape: a struct built from its config that
//! implements the port trait and reports its own health.

pub mod events;
pub mod payments;
pub mod seats;
pub mod sqlite;
pub mod storage;
pub mod users;
