//! Rows back into the model, with the one corrupt-row policy: whatever
//! does not read back as the model is `unavailable`, naming the column.

use booking_model::{Booking, BookingStatus, IdempotencyRecord, PortError, PortResult};

use super::{Outcome, Value};

/// The column list of every booking `SELECT`, read by [`booking`].
macro_rules! booking_columns {
    () => {
        "id, user_id, showtime_id, seats, total_cents, currency, status, lock_id, lock_expires_at, \
         payment_transaction_id, failure_reason, created_at, updated_at, version, \
         charge_attempted_at, refunded_at, settle_after, settle_attempts"
    };
}
pub(crate) use booking_columns;

/// The column list of every idempotency record `SELECT`, read by [`record`].
macro_rules! record_columns {
    () => {
        "user_id, key, fingerprint, response, lease_expires_at, expires_at, version"
    };
}
pub(crate) use record_columns;

pub(crate) fn corrupt(column: &str, detail: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(format!("database: corrupt {column}: {detail}"))
}

pub(crate) fn get_text(row: &[Value], at: usize, column: &str) -> PortResult<String> {
    match row.get(at) {
        Some(Value::Text(text)) => Ok(text.clone()),
        other => Err(corrupt(column, format!("{other:?}"))),
    }
}

pub(crate) fn get_optional_text(
    row: &[Value],
    at: usize,
    column: &str,
) -> PortResult<Option<String>> {
    match row.get(at) {
        Some(Value::Null) => Ok(None),
        Some(Value::Text(text)) => Ok(Some(text.clone())),
        other => Err(corrupt(column, format!("{other:?}"))),
    }
}

pub(crate) fn get_u64(row: &[Value], at: usize, column: &str) -> PortResult<u64> {
    match row.get(at) {
        Some(Value::Integer(n)) => u64::try_from(*n).map_err(|_| corrupt(column, n)),
        other => Err(corrupt(column, format!("{other:?}"))),
    }
}

fn get_optional_u64(row: &[Value], at: usize, column: &str) -> PortResult<Option<u64>> {
    match row.get(at) {
        Some(Value::Null) => Ok(None),
        _ => get_u64(row, at, column).map(Some),
    }
}

fn get_u32(row: &[Value], at: usize, column: &str) -> PortResult<u32> {
    let n = get_u64(row, at, column)?;
    u32::try_from(n).map_err(|_| corrupt(column, n))
}

/// The seats column: a JSON list of seat numbers.
pub(crate) fn seats_json(seats: &[String]) -> String {
    // A list of strings always serialises.
    serde_json::to_string(seats).unwrap_or_else(|_| "[]".into())
}

/// Every row of a `SELECT booking_columns!()`.
pub fn bookings(outcome: Outcome) -> PortResult<Vec<Booking>> {
    outcome.rows.iter().map(|row| booking(row)).collect()
}

/// A row of any `SELECT booking_columns!()`.
pub fn booking(row: &[Value]) -> PortResult<Booking> {
    let seats = get_text(row, 3, "seats")?;
    let status = get_text(row, 6, "status")?;
    Ok(Booking {
        id: get_text(row, 0, "id")?,
        user_id: get_text(row, 1, "user_id")?,
        showtime_id: get_text(row, 2, "showtime_id")?,
        seats: serde_json::from_str(&seats).map_err(|e| corrupt("seats", e))?,
        total_cents: get_u64(row, 4, "total_cents")?,
        currency: get_text(row, 5, "currency")?,
        status: BookingStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        lock_id: get_text(row, 7, "lock_id")?,
        lock_expires_at: get_u64(row, 8, "lock_expires_at")?,
        payment_transaction_id: get_optional_text(row, 9, "payment_transaction_id")?,
        failure_reason: get_optional_text(row, 10, "failure_reason")?,
        created_at: get_u64(row, 11, "created_at")?,
        updated_at: get_u64(row, 12, "updated_at")?,
        version: get_u64(row, 13, "version")?,
        charge_attempted_at: get_optional_u64(row, 14, "charge_attempted_at")?,
        refunded_at: get_optional_u64(row, 15, "refunded_at")?,
        settle_after: get_optional_u64(row, 16, "settle_after")?,
        settle_attempts: get_u32(row, 17, "settle_attempts")?,
    })
}

/// A row of any `SELECT record_columns!()`.
pub fn record(row: &[Value]) -> PortResult<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        user_id: get_text(row, 0, "user_id")?,
        key: get_text(row, 1, "key")?,
        fingerprint: get_text(row, 2, "fingerprint")?,
        response: get_optional_text(row, 3, "response")?,
        lease_expires_at: get_u64(row, 4, "lease_expires_at")?,
        expires_at: get_u64(row, 5, "expires_at")?,
        version: get_u64(row, 6, "version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::storage::tests::{booking as stored, stored_row};

    #[test]
    fn the_column_list_ends_with_the_added_columns() {
        let columns: Vec<&str> = booking_columns!().split(", ").map(str::trim).collect();
        assert_eq!(columns.len(), 18);
        assert_eq!(
            &columns[14..],
            [
                "charge_attempted_at",
                "refunded_at",
                "settle_after",
                "settle_attempts"
            ]
        );
    }

    fn row() -> Vec<Value> {
        stored_row(&stored())
    }

    #[test]
    fn rows_map_back_and_corrupt_rows_are_unavailable_not_panics() {
        assert_eq!(
            booking(&row()).unwrap(),
            Booking {
                version: 1,
                ..stored()
            }
        );
        let corrupted = |at: usize, value: Value| {
            let mut bad = row();
            bad[at] = value;
            booking(&bad)
        };
        for (at, value) in [
            (6, Value::Text("WEIRD".into())),
            (3, Value::Text("not json".into())),
            (4, Value::Integer(-1)),
            (11, Value::Integer(i64::MIN)),
            (14, Value::Integer(-5)),
            (17, Value::Integer(i64::from(u32::MAX) + 1)),
            (0, Value::Integer(7)),
            (9, Value::Integer(7)),
            (8, Value::Real(1.5)),
            (2, Value::Null),
        ] {
            assert!(
                matches!(corrupted(at, value.clone()), Err(PortError::Unavailable(_))),
                "{at}: {value:?}"
            );
        }
        assert!(matches!(
            booking(&row()[..3]),
            Err(PortError::Unavailable(_))
        ));
        let mut bad_record = vec![Value::Text("u".into()); 3];
        bad_record.extend([
            Value::Null,
            Value::Integer(1),
            Value::Integer(-2),
            Value::Integer(1),
        ]);
        assert!(matches!(
            record(&bad_record),
            Err(PortError::Unavailable(_))
        ));
        bad_record[5] = Value::Integer(2);
        assert_eq!(record(&bad_record).unwrap().expires_at, 2);
    }
}
