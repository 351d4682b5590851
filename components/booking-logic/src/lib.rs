//! The booking service's logic: the workflow (`workflow`), its GraphQL
//! schema (`schema`) and the GraphQL-over-HTTP handling (`http`), written
//! against the traits in `ports` so the same code runs inside the
//! `booking` component and natively.

pub mod model;
pub mod ports;
