//! [`Database`] on a rusqlite connection: the host's adapter and the Spin
//! adapter's tests run the statements this way. Statements are prepared
//! once per connection (rusqlite's statement cache) and bound without
//! copying; the changed-row count is the connection's `changes()`, as
//! under Spin.

use booking_model::PortResult;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Database, Outcome, Statement, Value, unavailable};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::Null => ValueRef::Null,
        }))
    }
}

/// Text that is not UTF-8 comes back as a blob, which no column of ours
/// reads: corrupt, not silently repaired.
fn value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(s) => match std::str::from_utf8(s) {
            Ok(text) => Value::Text(text.to_owned()),
            Err(_) => Value::Blob(s.to_vec()),
        },
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Null => Value::Null,
    }
}

impl Database for rusqlite::Connection {
    fn run(&self, statement: Statement) -> PortResult<Outcome> {
        let mut prepared = self.prepare_cached(statement.sql).map_err(unavailable)?;
        let columns = prepared.column_count();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(&statement.params))
            .map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(unavailable)? {
            out.push(
                (0..columns)
                    .map(|at| row.get_ref(at).map(value))
                    .collect::<rusqlite::Result<_>>()
                    .map_err(unavailable)?,
            );
        }
        drop(rows);
        Ok(Outcome {
            rows: out,
            changes: self.changes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use booking_model::PortError;

    use super::*;
    use crate::sqlite::storage::tests::{booking, event};
    use crate::sqlite::{event_history, get_booking, insert_booking, migrate};

    #[test]
    fn statements_run_with_their_values_and_changes() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&db).unwrap();
        insert_booking(&db, &booking(), &[event()]).unwrap();
        assert_eq!(
            get_booking(&db, "b1").unwrap(),
            Some(Booking {
                version: 1,
                ..booking()
            })
        );
        assert_eq!(event_history(&db, "b1").unwrap(), [event()]);
        let stepped = db
            .run(Statement::new(
                "SELECT ?, ?, ?, ?, ?",
                vec![
                    Value::Integer(-3),
                    Value::Real(0.5),
                    Value::Text("é".into()),
                    Value::Blob(vec![0, 1]),
                    Value::Null,
                ],
            ))
            .unwrap();
        assert_eq!(
            stepped.rows,
            [vec![
                Value::Integer(-3),
                Value::Real(0.5),
                Value::Text("é".into()),
                Value::Blob(vec![0, 1]),
                Value::Null
            ]]
        );
        // The trigger's own changes are not counted.
        let cleared = db
            .run(Statement::plain("UPDATE bookings SET currency = 'EUR'"))
            .unwrap();
        assert_eq!(cleared.changes, 1);
    }

    #[test]
    fn text_that_is_not_utf8_is_corrupt_and_sql_errors_unavailable() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&db).unwrap();
        insert_booking(&db, &booking(), &[]).unwrap();
        db.execute("UPDATE bookings SET currency = CAST(x'ff' AS TEXT)", [])
            .unwrap();
        assert!(
            matches!(get_booking(&db, "b1"), Err(PortError::Unavailable(m)) if m.contains("currency"))
        );
        assert!(matches!(
            db.run(Statement::plain("SELECT * FROM nowhere")),
            Err(PortError::Unavailable(_))
        ));
    }

    use booking_model::Booking;
}
