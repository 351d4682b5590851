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

pub use cinema::booking::*;

booking_model::wit_conversions! {
    package: crate::bindings::cinema::booking,
    maintenance: crate::bindings::exports::cinema::booking::maintenance,
}

#[cfg(test)]
mod tests {
    use booking_model::{BookingStatus, EventKind, PortError};

    use super::{storage, types};

    fn booking(status: BookingStatus) -> booking_model::Booking {
        booking_model::Booking {
            id: "b1".into(),
            user_id: "user_123".into(),
            showtime_id: "showtime_456".into(),
            seats: vec!["A1".into(), "A2".into()],
            total_cents: 3000,
            currency: "USD".into(),
            status,
            lock_id: "lock_1".into(),
            lock_expires_at: 11,
            payment_transaction_id: Some("txn".into()),
            failure_reason: None,
            created_at: 1,
            updated_at: 2,
            version: 3,
            charge_attempted_at: Some(4),
            refunded_at: None,
            settle_after: Some(5),
            settle_attempts: 6,
        }
    }

    #[test]
    fn every_record_case_and_error_survives_the_trip_through_the_bindings() {
        for status in BookingStatus::ALL {
            let model = booking(status);
            let wit: storage::Booking = model.clone().into();
            assert_eq!(booking_model::Booking::from(wit), model);
            for kind in EventKind::ALL {
                let event = booking_model::Event::announcing(&model, kind, "e".into(), 9);
                let wit: storage::Event = event.clone().into();
                assert_eq!(booking_model::Event::from(wit), event);
            }
        }
        for error in [
            PortError::NotFound("a".into()),
            PortError::Rejected("b".into()),
            PortError::Conflict("c".into()),
            PortError::Unavailable("d".into()),
            PortError::Timeout("e".into()),
        ] {
            let wit: types::Error = error.clone().into();
            assert_eq!(PortError::from(wit), error);
        }
    }
}
