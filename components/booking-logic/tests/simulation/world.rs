//! One run's world: the fakes with a drawn cast (showtimes, seats,
//! prices, users), and the real workflow and GraphQL schema on top.

use std::sync::Arc;

use booking_logic::Workflow;
use booking_logic::settings::Settings;
use booking_logic::testing::Fakes;

use super::rng::Rng;

pub const START: u64 = 1_700_000_000_000;
/// Short locks, so that runs often outlive them.
pub const LOCK_SECONDS: u32 = 30;
pub const LOCK_MS: u64 = LOCK_SECONDS as u64 * 1000;
pub const DECLINED_CARD: &str = "card_declined";
pub const GOOD_CARD: &str = "card_ok";

pub struct Showtime {
    pub id: String,
    pub seats: Vec<String>,
}

pub struct World {
    pub fakes: Fakes,
    pub workflow: Arc<Workflow>,
    pub showtimes: Vec<Showtime>,
    /// Active users, then an inactive one, then one nobody knows.
    pub users: Vec<&'static str>,
}

impl World {
    pub fn new(rng: &mut Rng) -> World {
        let fakes = Fakes::new(START);
        fakes.users.add_user("alice", true);
        fakes.users.add_user("bob", true);
        fakes.users.add_user("carol", true);
        fakes.users.add_user("dave", false);
        fakes.payments.decline_details(DECLINED_CARD);
        // Few seats, so clients contend for them.
        let showtimes: Vec<Showtime> = (1..=rng.between(1, 2))
            .map(|n| Showtime {
                id: format!("show-{n}"),
                seats: (1..=rng.between(3, 6))
                    .map(|seat| format!("A{seat}"))
                    .collect(),
            })
            .collect();
        for showtime in &showtimes {
            let priced: Vec<(&str, u64)> = showtime
                .seats
                .iter()
                .map(|seat| (seat.as_str(), rng.between(8, 16) * 100))
                .collect();
            fakes.add_showtime(&showtime.id, "EUR", &priced);
        }
        fakes.knobs.set_interleaving(true);

        let settings = Settings {
            seat_lock_seconds: LOCK_SECONDS,
            max_seats_per_booking: 3,
            // The clients act for many users; who may do what is
            // `access`'s concern, tested on its own.
            auth_required: false,
            ..Settings::default()
        };
        let workflow = Arc::new(Workflow::new(fakes.ports(), settings));
        World {
            workflow,
            showtimes,
            users: vec!["alice", "bob", "carol", "dave", "nobody"],
            fakes,
        }
    }
}
