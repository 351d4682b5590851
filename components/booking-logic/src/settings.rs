//! Tunables of the booking logic. They are read through a lookup function
//! rather than `std::env` directly so the component (which passes
//! `std::env::var`), native hosts and tests all configure it the same way.

/// How the workflow is tuned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long seats stay locked for a PENDING booking
    /// (`SEAT_LOCK_DURATION`, seconds, default 300).
    pub seat_lock_seconds: u32,
    /// How long a PENDING booking may hold its seats in all, counted from
    /// its creation, however often its lock is extended
    /// (`LOCK_MAX_HOLD_SECONDS`, default 900, at least
    /// `SEAT_LOCK_DURATION`).
    pub lock_max_hold_seconds: u32,
    /// Most seats one booking may hold (`MAX_SEATS_PER_BOOKING`, default 10).
    pub max_seats_per_booking: u32,
    /// Most PENDING bookings with a running seat lock one user may have
    /// at once (`MAX_PENDING_BOOKINGS_PER_USER`, default 3), so one
    /// account cannot hold a showtime's seats by booking and never paying.
    pub max_pending_bookings_per_user: u32,
    /// Most seats one user's PENDING bookings may hold in one showtime
    /// (`MAX_SEATS_PER_USER_PER_SHOWTIME`, default 10).
    pub max_seats_per_user_per_showtime: u32,
    /// Label reported by the `logicVersion` query (`LOGIC_VERSION`, default
    /// the crate version), so operators can tell which logic is serving
    /// after a hot swap.
    pub logic_version: String,
    /// Flat fee added to every booking's total (`BOOKING_FEE_CENTS`,
    /// cents). Builds with the `booking-fee` feature default to 150: that
    /// build is "v2" of the logic, whose prices differ visibly from v1's.
    pub booking_fee_cents: u64,
    /// The sha256 of the running component (`LOGIC_SHA256`), which the host
    /// sets; none when the logic runs natively.
    pub logic_sha256: Option<String>,
    /// Whether mutations and user-scoped queries need a bearer token
    /// (`AUTH_MODE`: `required`, the default, or `disabled` for local
    /// experiments, where every caller may act for any user).
    pub auth_required: bool,
    /// Whether the schema answers introspection and GraphiQL is served
    /// (`GRAPHQL_INTROSPECTION`, default true; turn off in production).
    pub introspection: bool,
    /// Deepest selection nesting accepted (`GRAPHQL_MAX_DEPTH`, default 15:
    /// GraphiQL's introspection query nests 14 deep; our own types 4).
    pub max_depth: u32,
    /// Most complexity points one document may cost, one per field and
    /// more for costly ones (`GRAPHQL_MAX_COMPLEXITY`, default 500).
    pub max_complexity: u32,
    /// Most operations in one batched request (`GRAPHQL_MAX_BATCH`,
    /// default 10).
    pub max_batch_operations: u32,
    /// How long the first answer to an idempotency key is kept
    /// (`IDEMPOTENCY_RETENTION_HOURS`, default 24, at least 24).
    pub idempotency_retention_hours: u32,
    /// How long a key's first request owns it (`IDEMPOTENCY_LEASE_SECONDS`,
    /// default 65): at least as long as a request can run, which our host
    /// sets from its request deadline; short enough that a client retrying
    /// after a crash is not locked out for long.
    pub idempotency_lease_seconds: u32,
    /// How often, at most, requests also run a bounded sweep
    /// (`SWEEP_ON_REQUESTS_SECONDS`; unset: never), for hosts with no
    /// timer of their own such as Spin (`Workflow::sweep_if_due`).
    pub sweep_on_requests_seconds: Option<u32>,
    /// Whether every answer carries a `booking_model::report` header for
    /// the host's metrics (`HOST_REPORT`, default false; our host sets it
    /// and removes the header, a host that does not would show it to
    /// clients).
    pub host_report: bool,
}

/// Upper bounds that keep a typo (an extra zero) from locking seats for
/// days or letting one booking take a whole theater.
const MAX_SEAT_LOCK_SECONDS: u32 = 86_400;
const MAX_SEATS_LIMIT: u32 = 1_000;
const MAX_BOOKING_FEE_CENTS: u64 = 100_000;
const MAX_DEPTH_LIMIT: u32 = 100;
const MAX_COMPLEXITY_LIMIT: u32 = 100_000;
const MAX_BATCH_LIMIT: u32 = 100;
/// Clients may retry for a day after a failure (Stripe keeps keys 24 h),
/// so shorter retention would break the promise; a month is plenty.
const MIN_RETENTION_HOURS: u32 = 24;
const MAX_RETENTION_HOURS: u32 = 720;
const MAX_LEASE_SECONDS: u32 = 3_605;
const MAX_SWEEP_INTERVAL_SECONDS: u32 = 86_400;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seat_lock_seconds: 300,
            lock_max_hold_seconds: 900,
            max_seats_per_booking: 10,
            max_pending_bookings_per_user: 3,
            max_seats_per_user_per_showtime: 10,
            logic_version: if cfg!(feature = "booking-fee") {
                concat!(env!("CARGO_PKG_VERSION"), "+booking-fee").to_string()
            } else {
                env!("CARGO_PKG_VERSION").to_string()
            },
            booking_fee_cents: if cfg!(feature = "booking-fee") {
                150
            } else {
                0
            },
            logic_sha256: None,
            auth_required: true,
            introspection: true,
            max_depth: 15,
            max_complexity: 500,
            max_batch_operations: 10,
            idempotency_retention_hours: 24,
            idempotency_lease_seconds: 65,
            sweep_on_requests_seconds: None,
            host_report: false,
        }
    }
}

impl Settings {
    /// Builds settings from `lookup` (a variable name to its value); unset
    /// variables keep their defaults, malformed ones are an error naming
    /// the variable, so a bad deployment fails loudly instead of running
    /// with a surprising value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let defaults = Settings::default();
        let seat_lock_seconds = bounded(
            &lookup,
            "SEAT_LOCK_DURATION",
            defaults.seat_lock_seconds,
            MAX_SEAT_LOCK_SECONDS,
        )?;
        let lock_max_hold_seconds = match bounded(
            &lookup,
            "LOCK_MAX_HOLD_SECONDS",
            defaults.lock_max_hold_seconds.max(seat_lock_seconds),
            MAX_SEAT_LOCK_SECONDS,
        )? {
            hold if hold < seat_lock_seconds => {
                return Err(format!(
                    "LOCK_MAX_HOLD_SECONDS must be at least SEAT_LOCK_DURATION ({seat_lock_seconds}), got {hold}"
                ));
            }
            hold => hold,
        };
        let max_seats_per_booking = bounded(
            &lookup,
            "MAX_SEATS_PER_BOOKING",
            defaults.max_seats_per_booking,
            MAX_SEATS_LIMIT,
        )?;
        let max_pending_bookings_per_user = bounded(
            &lookup,
            "MAX_PENDING_BOOKINGS_PER_USER",
            defaults.max_pending_bookings_per_user,
            MAX_SEATS_LIMIT,
        )?;
        let max_seats_per_user_per_showtime = bounded(
            &lookup,
            "MAX_SEATS_PER_USER_PER_SHOWTIME",
            defaults.max_seats_per_user_per_showtime,
            MAX_SEATS_LIMIT,
        )?;
        let logic_version = match lookup("LOGIC_VERSION") {
            None => defaults.logic_version,
            Some(label) if label.trim().is_empty() => {
                return Err("LOGIC_VERSION must not be empty".to_string());
            }
            Some(label) => label.trim().to_string(),
        };
        let booking_fee_cents = match lookup("BOOKING_FEE_CENTS") {
            None => defaults.booking_fee_cents,
            Some(raw) => raw
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|fee| *fee <= MAX_BOOKING_FEE_CENTS)
                .ok_or_else(|| {
                    format!("BOOKING_FEE_CENTS must be a whole number of cents up to {MAX_BOOKING_FEE_CENTS}, got {raw:?}")
                })?,
        };
        let auth_required = match lookup("AUTH_MODE").as_deref().map(str::trim) {
            None | Some("required") => true,
            Some("disabled") => false,
            Some(other) => {
                return Err(format!(
                    "AUTH_MODE must be \"required\" or \"disabled\", got {other:?}"
                ));
            }
        };
        Ok(Settings {
            seat_lock_seconds,
            lock_max_hold_seconds,
            max_seats_per_booking,
            max_pending_bookings_per_user,
            max_seats_per_user_per_showtime,
            logic_version,
            booking_fee_cents,
            logic_sha256: lookup("LOGIC_SHA256").filter(|sha| !sha.is_empty()),
            auth_required,
            introspection: flag(&lookup, "GRAPHQL_INTROSPECTION", defaults.introspection)?,
            max_depth: bounded(
                &lookup,
                "GRAPHQL_MAX_DEPTH",
                defaults.max_depth,
                MAX_DEPTH_LIMIT,
            )?,
            max_complexity: bounded(
                &lookup,
                "GRAPHQL_MAX_COMPLEXITY",
                defaults.max_complexity,
                MAX_COMPLEXITY_LIMIT,
            )?,
            max_batch_operations: bounded(
                &lookup,
                "GRAPHQL_MAX_BATCH",
                defaults.max_batch_operations,
                MAX_BATCH_LIMIT,
            )?,
            idempotency_retention_hours: match bounded(
                &lookup,
                "IDEMPOTENCY_RETENTION_HOURS",
                defaults.idempotency_retention_hours,
                MAX_RETENTION_HOURS,
            )? {
                hours if hours < MIN_RETENTION_HOURS => {
                    return Err(format!(
                        "IDEMPOTENCY_RETENTION_HOURS must be at least {MIN_RETENTION_HOURS}, got {hours}"
                    ));
                }
                hours => hours,
            },
            idempotency_lease_seconds: bounded(
                &lookup,
                "IDEMPOTENCY_LEASE_SECONDS",
                defaults.idempotency_lease_seconds,
                MAX_LEASE_SECONDS,
            )?,
            sweep_on_requests_seconds: match lookup("SWEEP_ON_REQUESTS_SECONDS") {
                None => None,
                Some(_) => Some(bounded(
                    &lookup,
                    "SWEEP_ON_REQUESTS_SECONDS",
                    1,
                    MAX_SWEEP_INTERVAL_SECONDS,
                )?),
            },
            host_report: flag(&lookup, "HOST_REPORT", defaults.host_report)?,
        })
    }
}

/// Reads a whole number in `1..=max`; zero is refused because a zero lock
/// or a zero seat limit would make every booking fail.
fn bounded(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    max: u32,
) -> Result<u32, String> {
    let Some(raw) = lookup(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<u32>() {
        Ok(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(format!(
            "{name} must be a whole number from 1 to {max}, got {raw:?}"
        )),
    }
}

/// Reads `true`/`false` (or 1/0, on/off).
fn flag(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
) -> Result<bool, String> {
    let Some(raw) = lookup(name) else {
        return Ok(default);
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" => Ok(false),
        _ => Err(format!("{name} must be true or false, got {raw:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_from(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn unset_variables_keep_the_defaults() {
        let settings = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.seat_lock_seconds, 300);
        assert_eq!(settings.max_seats_per_booking, 10);
        assert_eq!(settings.max_pending_bookings_per_user, 3);
        assert_eq!(settings.max_seats_per_user_per_showtime, 10);
        assert_eq!(settings.logic_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(settings.booking_fee_cents, 0);
        assert!(settings.auth_required, "auth is on unless switched off");
    }

    #[test]
    fn set_variables_override_the_defaults() {
        let settings = Settings::from_lookup(lookup_from(&[
            ("SEAT_LOCK_DURATION", " 60 "),
            ("MAX_SEATS_PER_BOOKING", "4"),
            ("MAX_PENDING_BOOKINGS_PER_USER", "2"),
            ("MAX_SEATS_PER_USER_PER_SHOWTIME", "6"),
            ("LOGIC_VERSION", "canary-7"),
            ("BOOKING_FEE_CENTS", "250"),
            ("AUTH_MODE", "disabled"),
            ("GRAPHQL_INTROSPECTION", "false"),
            ("GRAPHQL_MAX_DEPTH", "5"),
            ("GRAPHQL_MAX_COMPLEXITY", "50"),
            ("GRAPHQL_MAX_BATCH", "2"),
            ("IDEMPOTENCY_RETENTION_HOURS", "48"),
        ]))
        .unwrap();
        assert!(!settings.auth_required);
        assert!(!settings.introspection);
        assert_eq!(
            (
                settings.max_depth,
                settings.max_complexity,
                settings.max_batch_operations
            ),
            (5, 50, 2)
        );
        assert_eq!(settings.idempotency_retention_hours, 48);
        assert_eq!(settings.seat_lock_seconds, 60);
        assert_eq!(settings.max_seats_per_booking, 4);
        assert_eq!(settings.max_pending_bookings_per_user, 2);
        assert_eq!(settings.max_seats_per_user_per_showtime, 6);
        assert_eq!(settings.logic_version, "canary-7");
        assert_eq!(settings.booking_fee_cents, 250);
    }

    #[test]
    fn malformed_numbers_are_refused_with_the_variable_name() {
        for (name, value) in [
            ("SEAT_LOCK_DURATION", "five minutes"),
            ("SEAT_LOCK_DURATION", "0"),
            ("SEAT_LOCK_DURATION", "-5"),
            ("SEAT_LOCK_DURATION", "86401"),
            ("MAX_SEATS_PER_BOOKING", "1.5"),
            ("MAX_SEATS_PER_BOOKING", ""),
            ("MAX_SEATS_PER_BOOKING", "99999999999"),
            ("MAX_PENDING_BOOKINGS_PER_USER", "0"),
            ("MAX_SEATS_PER_USER_PER_SHOWTIME", "1001"),
            ("BOOKING_FEE_CENTS", "-1"),
            ("BOOKING_FEE_CENTS", "1.50"),
            ("BOOKING_FEE_CENTS", "100001"),
            ("AUTH_MODE", "off"),
            ("GRAPHQL_INTROSPECTION", "maybe"),
            ("GRAPHQL_MAX_DEPTH", "0"),
            ("GRAPHQL_MAX_COMPLEXITY", "100001"),
            ("GRAPHQL_MAX_BATCH", "101"),
            ("IDEMPOTENCY_RETENTION_HOURS", "1"),
        ] {
            let error = Settings::from_lookup(|key| (key == name).then(|| value.to_string()))
                .expect_err(value);
            assert!(error.starts_with(name), "{error}");
        }
    }

    #[test]
    fn an_empty_version_label_is_refused() {
        let error = Settings::from_lookup(lookup_from(&[("LOGIC_VERSION", "  ")])).unwrap_err();
        assert!(error.contains("LOGIC_VERSION"));
    }
}
