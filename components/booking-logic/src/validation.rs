//! Input checks done before any dependency is called, so malformed
//! requests cost nothing and never reach the seat, user or payment
//! services. Messages name the field but never echo the (possibly huge)
//! value back.

use std::collections::HashSet;

use crate::error::BookingError;

/// Longest id accepted (user, showtime, booking, payment method).
pub const MAX_ID_CHARS: usize = 128;
/// Longest seat label, e.g. "A12".
pub const MAX_SEAT_CHARS: usize = 8;
/// Longest opaque payment token.
pub const MAX_PAYMENT_DETAILS_CHARS: usize = 1024;
/// Most bookings one page may hold.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Longest pagination cursor; cursors are short opaque strings we made.
pub const MAX_CURSOR_CHARS: usize = 512;

/// An id: 1 to `MAX_ID_CHARS` printable characters, no whitespace (ids
/// travel in URLs, logs and keys, where blanks cause ambiguity).
pub fn id(field: &str, value: &str) -> Result<(), BookingError> {
    if value.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > MAX_ID_CHARS {
        return Err(invalid(format!(
            "{field} must be at most {MAX_ID_CHARS} characters"
        )));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(format!(
            "{field} must contain only printable characters without spaces"
        )));
    }
    Ok(())
}

/// Free text such as a payment token: not blank, no control characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<(), BookingError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max_chars {
        return Err(invalid(format!(
            "{field} must be at most {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// The seats of one booking: 1 to `max` distinct labels of 1 to
/// `MAX_SEAT_CHARS` ASCII letters and digits.
pub fn seats(seats: &[String], max: u32) -> Result<(), BookingError> {
    if seats.is_empty() {
        return Err(invalid("seatNumbers must name at least one seat".into()));
    }
    if seats.len() > usize::try_from(max).unwrap_or(usize::MAX) {
        return Err(invalid(format!("a booking may hold at most {max} seats")));
    }
    let mut seen = HashSet::with_capacity(seats.len());
    for seat in seats {
        if seat.is_empty()
            || seat.len() > MAX_SEAT_CHARS
            || !seat.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(format!(
                "seat numbers must be 1 to {MAX_SEAT_CHARS} letters or digits"
            )));
        }
        if !seen.insert(seat.as_str()) {
            return Err(invalid(format!("seat {seat} is listed twice")));
        }
    }
    Ok(())
}

/// A page size from GraphQL (`Int`, so possibly negative).
pub fn page_size(first: i32) -> Result<u32, BookingError> {
    match u32::try_from(first) {
        Ok(size) if (1..=MAX_PAGE_SIZE).contains(&size) => Ok(size),
        _ => Err(invalid(format!(
            "first must be between 1 and {MAX_PAGE_SIZE}"
        ))),
    }
}

/// A pagination cursor as handed out by a previous page.
pub fn cursor(cursor: Option<&str>) -> Result<(), BookingError> {
    match cursor {
        Some(value) if value.is_empty() || value.chars().count() > MAX_CURSOR_CHARS => {
            Err(invalid("after is not a valid cursor".into()))
        }
        _ => Ok(()),
    }
}

fn invalid(message: String) -> BookingError {
    BookingError::InvalidInput(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(seats: &[&str]) -> Vec<String> {
        seats.iter().map(|seat| seat.to_string()).collect()
    }

    #[test]
    fn ids_must_be_short_printable_and_unspaced() {
        assert!(id("userId", "user_123").is_ok());
        assert!(id("userId", &"x".repeat(MAX_ID_CHARS)).is_ok());
        for bad in ["", " ", "user 1", "user\n1", "user\u{0}", "\tuser"] {
            assert_eq!(
                id("userId", bad).unwrap_err().code(),
                "INVALID_INPUT",
                "{bad:?}"
            );
        }
        let error = id("userId", &"x".repeat(MAX_ID_CHARS + 1)).unwrap_err();
        assert!(error.to_string().contains("at most 128"), "{error}");
        assert!(
            !error.to_string().contains("xxxx"),
            "value must not be echoed"
        );
    }

    #[test]
    fn seat_lists_are_bounded_distinct_and_alphanumeric() {
        assert!(seats(&owned(&["A1", "A2", "B10"]), 10).is_ok());
        assert!(seats(&owned(&[]), 10).is_err());
        assert!(seats(&owned(&["A1", "A2", "A3"]), 2).is_err());
        assert!(seats(&owned(&["A1", "A1"]), 10).is_err());
        for bad in ["", "A-1", "A 1", "ABCDEFGHI", "Ä1"] {
            assert!(seats(&owned(&[bad]), 10).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_must_not_be_blank_or_contain_controls() {
        assert!(text("paymentDetails", "card_token_xyz", 20).is_ok());
        assert!(text("paymentDetails", "   ", 20).is_err());
        assert!(text("paymentDetails", "tok\u{7}", 20).is_err());
        assert!(text("paymentDetails", &"t".repeat(21), 20).is_err());
    }

    #[test]
    fn page_sizes_and_cursors_are_bounded() {
        assert_eq!(page_size(1), Ok(1));
        assert_eq!(page_size(100), Ok(100));
        for bad in [0, -1, 101, i32::MIN, i32::MAX] {
            assert!(page_size(bad).is_err(), "{bad}");
        }
        assert!(cursor(None).is_ok());
        assert!(cursor(Some("c1")).is_ok());
        assert!(cursor(Some("")).is_err());
        assert!(cursor(Some(&"c".repeat(MAX_CURSOR_CHARS + 1))).is_err());
    }
}
