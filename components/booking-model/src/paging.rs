//! Paging a user's bookings, the rule every store applies: newest first
//! by `(created_at, id)`, keyset cursors, pages of at most [`MAX_PAGE`].
//! Stores ask for `limit + 1` rows after the cursor and hand them to
//! [`page`], which cuts the extra row off and names the next cursor.

use crate::{Booking, BookingPage, PortError, PortResult};

/// The most bookings a store returns in one call, whatever is asked.
pub const MAX_PAGE: u32 = 200;

/// The limit a store applies: at least 1, at most [`MAX_PAGE`].
pub fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Where the previous page ended: `"<created_at>:<id>"` of its last item.
/// Rows strictly before it in newest-first order come next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Signed, as SQLite INTEGER and BSON Int64 store it.
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    /// The cursor of a page request: before every row when there is none
    /// (`created_at < i64::MAX` holds for every stored booking).
    pub fn after(cursor: Option<&str>) -> PortResult<Cursor> {
        let Some(cursor) = cursor else {
            return Ok(Cursor {
                created_at: i64::MAX,
                id: String::new(),
            });
        };
        let malformed = || PortError::Rejected("malformed cursor".into());
        let (created_at, id) = cursor.split_once(':').ok_or_else(malformed)?;
        Ok(Cursor {
            created_at: created_at.parse().map_err(|_| malformed())?,
            id: id.to_owned(),
        })
    }

    /// Whether `booking` comes after this cursor, newest first.
    pub fn admits(&self, booking: &Booking) -> bool {
        let created_at = i64::try_from(booking.created_at).unwrap_or(i64::MAX);
        (created_at, booking.id.as_str()) < (self.created_at, self.id.as_str())
    }

    fn of(booking: &Booking) -> String {
        format!("{}:{}", booking.created_at, booking.id)
    }
}

/// Up to `limit + 1` rows after the cursor, newest first → the page.
pub fn page(mut items: Vec<Booking>, limit: u32) -> BookingPage {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(Cursor::of)
    } else {
        None
    };
    BookingPage { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BookingStatus;

    fn booking(id: &str, created_at: u64) -> Booking {
        Booking {
            id: id.into(),
            user_id: "u".into(),
            showtime_id: "s".into(),
            seats: vec![],
            total_cents: 0,
            currency: "USD".into(),
            status: BookingStatus::Pending,
            lock_id: "l".into(),
            lock_expires_at: 0,
            payment_transaction_id: None,
            failure_reason: None,
            created_at,
            updated_at: created_at,
            version: 1,
            charge_attempted_at: None,
            refunded_at: None,
            settle_after: None,
            settle_attempts: 0,
        }
    }

    #[test]
    fn a_page_names_its_last_item_and_the_cursor_admits_only_older_rows() {
        let rows = vec![booking("c", 30), booking("b", 20), booking("a", 20)];
        let first = page(rows.clone(), 2);
        assert_eq!(first.items, rows[..2]);
        assert_eq!(first.next_cursor.as_deref(), Some("20:b"));
        let cursor = Cursor::after(first.next_cursor.as_deref()).unwrap();
        let rest: Vec<_> = rows.iter().filter(|b| cursor.admits(b)).collect();
        assert_eq!(rest, [&rows[2]]);
        assert_eq!(page(rows.clone(), 3).next_cursor, None);
        assert!(rows.iter().all(|b| Cursor::after(None).unwrap().admits(b)));
    }

    #[test]
    fn malformed_cursors_are_rejected_and_limits_clamped() {
        for bad in ["", "20", "x:b", "1.5:b"] {
            assert!(
                matches!(Cursor::after(Some(bad)), Err(PortError::Rejected(_))),
                "{bad}"
            );
        }
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(10_000), MAX_PAGE);
    }
}
