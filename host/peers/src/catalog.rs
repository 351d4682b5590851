//! Demo data the reference peers serve: a few showtimes (one sized for
//! flash-sale benchmarks) and the users the seed's examples and load tests
//! use.

use serde::Serialize;

/// A showtime as the cinema team configures it; live seat state is kept
/// by the cinema server.
#[derive(Debug, Clone)]
pub struct Showtime {
    pub id: String,
    pub movie_id: String,
    pub movie_title: String,
    pub theater: String,
    /// Milliseconds since the Unix epoch.
    pub starts_at_ms: u64,
    pub currency: String,
    pub seats: Vec<Seat>,
}

#[derive(Debug, Clone)]
pub struct Seat {
    /// e.g. "A1".
    pub number: String,
    pub row: String,
    pub price_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
}

/// Load-test users `loadtest_user_1` ..= `loadtest_user_<LOAD_TEST_USERS>`.
pub const LOAD_TEST_USERS: u32 = 10_000;

/// 2030-06-01T19:00:00Z: far enough ahead that every showtime is upcoming.
const PREMIERE_MS: u64 = 1_906_570_800_000;
const HOUR_MS: u64 = 3_600_000;

pub fn showtimes() -> Vec<Showtime> {
    vec![
        showtime(
            ("showtime_456", "movie_123", "Inception", "Theater 1"),
            PREMIERE_MS,
            "USD",
            seat_grid('A'..='E', 10, |row| if row <= 'B' { 1500 } else { 1200 }),
        ),
        showtime(
            ("showtime_789", "movie_234", "The Matrix", "Theater 2"),
            PREMIERE_MS + 3 * HOUR_MS,
            "USD",
            seat_grid('A'..='D', 8, |_| 1300),
        ),
        showtime(
            ("showtime_101", "movie_345", "Interstellar", "Theater 3"),
            PREMIERE_MS + 24 * HOUR_MS,
            "EUR",
            seat_grid('A'..='C', 12, |_| 1100),
        ),
        // 500 seats at one price: the flash-sale benchmark's target.
        showtime(
            (
                "showtime_flash",
                "movie_456",
                "Flash Sale Premiere",
                "Grand Hall",
            ),
            PREMIERE_MS + 48 * HOUR_MS,
            "USD",
            seat_grid('A'..='T', 25, |_| 1000),
        ),
    ]
}

/// The user with this id, if the user service knows it.
pub fn user(id: &str) -> Option<User> {
    let named = |name: &str, email: &str, active: bool| User {
        id: id.to_owned(),
        name: name.to_owned(),
        email: email.to_owned(),
        active,
    };
    match id {
        "user_123" => Some(named("Alice Johnson", "alice@example.com", true)),
        "user_456" => Some(named("Bob Smith", "bob@example.com", true)),
        "user_789" => Some(named("Carol Davis", "carol@example.com", true)),
        "user_inactive" => Some(named("Dave Inactive", "dave@example.com", false)),
        "support_1" => Some(named("Support Desk", "support@example.com", true)),
        _ => load_test_user(id),
    }
}

/// The roles of a user: `support_1` may read every booking; everyone else
/// has none.
pub fn roles(id: &str) -> Vec<&'static str> {
    match id {
        "support_1" => vec!["support"],
        _ => Vec::new(),
    }
}

/// Generated on the fly so ten thousand users cost no memory.
fn load_test_user(id: &str) -> Option<User> {
    let n: u32 = id.strip_prefix("loadtest_user_")?.parse().ok()?;
    // Only the canonical spelling: "loadtest_user_007" is someone else.
    if !(1..=LOAD_TEST_USERS).contains(&n) || id != format!("loadtest_user_{n}") {
        return None;
    }
    Some(User {
        id: id.to_owned(),
        name: format!("Load Test User {n}"),
        email: format!("loadtest_user_{n}@example.com"),
        active: true,
    })
}

fn showtime(
    (id, movie_id, movie_title, theater): (&str, &str, &str, &str),
    starts_at_ms: u64,
    currency: &str,
    seats: Vec<Seat>,
) -> Showtime {
    Showtime {
        id: id.to_owned(),
        movie_id: movie_id.to_owned(),
        movie_title: movie_title.to_owned(),
        theater: theater.to_owned(),
        starts_at_ms,
        currency: currency.to_owned(),
        seats,
    }
}

/// Seats "A1".."A{per_row}", "B1".. for every row, priced per row.
fn seat_grid(
    rows: std::ops::RangeInclusive<char>,
    per_row: u32,
    price: impl Fn(char) -> u64,
) -> Vec<Seat> {
    rows.flat_map(|row| {
        let price_cents = price(row);
        (1..=per_row).map(move |n| Seat {
            number: format!("{row}{n}"),
            row: row.to_string(),
            price_cents,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showtime_456_matches_the_seed() {
        let all = showtimes();
        let inception = all
            .iter()
            .find(|s| s.id == "showtime_456")
            .expect("present");
        assert_eq!(inception.movie_title, "Inception");
        assert_eq!(inception.seats.len(), 50);
        let price = |n: &str| {
            inception
                .seats
                .iter()
                .find(|s| s.number == n)
                .map(|s| s.price_cents)
        };
        assert_eq!(price("A1"), Some(1500));
        assert_eq!(price("B10"), Some(1500));
        assert_eq!(price("C1"), Some(1200));
        assert_eq!(price("E10"), Some(1200));
        assert_eq!(price("F1"), None);
    }

    #[test]
    fn flash_showtime_has_500_seats() {
        let flash = showtimes()
            .into_iter()
            .find(|s| s.id == "showtime_flash")
            .expect("present");
        assert_eq!(flash.seats.len(), 500);
        assert!(flash.seats.iter().any(|s| s.number == "T25"));
    }

    #[test]
    fn load_test_users_are_generated_in_range_only() {
        assert!(user("loadtest_user_1").is_some_and(|u| u.active));
        assert!(user("loadtest_user_10000").is_some());
        assert!(user("loadtest_user_0").is_none());
        assert!(user("loadtest_user_10001").is_none());
        assert!(user("loadtest_user_01").is_none());
        assert!(user("loadtest_user_+5").is_none());
        assert_eq!(user("user_inactive").map(|u| u.active), Some(false));
        assert!(user("support_1").is_some_and(|u| u.active && u.name == "Support Desk"));
        assert_eq!(roles("support_1"), vec!["support"]);
        assert!(roles("user_123").is_empty());
        assert!(user("nobody").is_none());
    }
}
