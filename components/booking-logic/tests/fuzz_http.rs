//! Property tests of the request path: generated GraphQL documents,
//! variables and batches (built from the real schema's fields and
//! arguments), and raw methods, paths, query strings, headers and bodies,
//! sent through `http::handle` with the real schema and workflow over the
//! fakes; auth on (with a valid, bad or no token) or off, sometimes with
//! dependencies made to fail. Whatever the input:
//!
//! - `handle` answers within `DEADLINE` and does not panic;
//! - no status is 5xx, except a 503 when a dependency was made to fail;
//! - every non-2xx answer and every `errors[]` entry has a non-empty
//!   `extensions.code`, and no error is `INTERNAL` unless a dependency
//!   failed;
//! - the body is JSON, GraphiQL aside (served exactly when a browser asks
//!   for it);
//! - the content type follows `Accept`: a GraphQL answer in the best
//!   acceptable type (RFC 9110: the most specific range sets a type's
//!   quality), refusals in `application/json`, 406 when neither is taken.
//!
//! Half the generated documents are tame (they validate, so most reach
//! the resolvers), half wild (broken values, fragments, variables,
//! limits). Nothing depends on timing: the fakes' clock stands still and
//! the deadline only detects a hang. The seed is fixed so every run
//! checks the same cases:
//!
//! ```text
//! cargo test --release -p booking-logic --test fuzz_http -- --nocapture
//!     # 3,500 + 1,500 cases in a few seconds, with a tally of outcomes
//! PROPTEST_CASES=20000 PROPTEST_RNG_SEED=7 cargo test --release -p booking-logic --test fuzz_http
//!     # more cases (per test), from another seed
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use booking_logic::http::{self, HttpRequest, HttpResponse, MAX_BODY_BYTES};
use booking_logic::model::Timestamp;
use booking_logic::ports::PortError;
use booking_logic::testing::{Fakes, Fault, Op};
use booking_logic::{Settings, Workflow};
use futures::executor::block_on;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Map, Value, json};

const START: Timestamp = 1_700_000_000_000;
/// Far longer than any case takes (milliseconds); only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(5);
const SEED: u64 = 0x6b00_c1e5;
const JSON: &str = "application/json";
const GRAPHQL_JSON: &str = "application/graphql-response+json";

/// `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override the defaults.
fn config(default_cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default_cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    // A failure prints its shrunk input; no regression files in the tree.
    config.failure_persistence = None;
    config.max_shrink_iters = 2_000;
    config
}

// --- The world each case runs in -------------------------------------------

/// Who the request claims to be.
#[derive(Debug, Clone)]
enum Auth {
    /// `AUTH_MODE=disabled`; the header, if any, is ignored.
    Off(Option<String>),
    /// Auth on, no `Authorization` header.
    Missing,
    /// A valid token of the booking's owner, another user or support,
    /// written as `format` says ("{}" is the token).
    Valid(Holder, &'static str),
    /// Auth on, a header that is no valid token.
    Invalid(String),
}

#[derive(Debug, Clone, Copy)]
enum Holder {
    Owner,
    Other,
    Support,
}

#[derive(Debug, Clone)]
struct Scenario {
    auth: Auth,
    introspection: bool,
    /// Queued port failures, one call each.
    faults: Vec<(Op, Fault)>,
}

/// Runs `request` against fresh fakes holding one PENDING booking
/// (`booking_123` of `user_123`), on its own thread so that a hang fails
/// the case instead of the whole run.
fn run(
    scenario: &Scenario,
    mut request: HttpRequest,
) -> Result<(HttpRequest, HttpResponse), TestCaseError> {
    let fakes = Fakes::sample(START);
    fakes.users.add_user("user_456", true);
    fakes.env.script_ids(["booking_123"]);
    let settings = Settings {
        auth_required: !matches!(scenario.auth, Auth::Off(_)),
        introspection: scenario.introspection,
        ..Settings::default()
    };
    let workflow = Arc::new(Workflow::new(fakes.ports(), settings));
    block_on(workflow.create_booking("user_123", "showtime_456", vec!["A1".to_string()]))
        .expect("the sample booking");
    let far = START + 86_400_000;
    let authorization = match &scenario.auth {
        Auth::Off(header) => header.clone(),
        Auth::Missing => None,
        Auth::Valid(holder, format) => {
            let token = match holder {
                Holder::Owner => fakes.users.issue_token("user_123", &[], far),
                Holder::Other => fakes.users.issue_token("user_456", &[], far),
                Holder::Support => fakes.users.issue_token("support_1", &["support"], far),
            };
            Some(format.replace("{}", &token))
        }
        Auth::Invalid(header) => Some(header.clone()),
    };
    if let Some(value) = authorization {
        request.headers.push(("Authorization".to_string(), value));
    }
    for (op, fault) in &scenario.faults {
        fakes.knobs.fail_next(*op, fault.clone());
    }

    let sent = request.clone();
    let (answer, answered) = mpsc::channel();
    thread::spawn(move || {
        let response = block_on(http::handle(workflow, request));
        let _ = answer.send(response);
    });
    match answered.recv_timeout(DEADLINE) {
        Ok(response) => Ok((sent, response)),
        Err(RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "no answer within {DEADLINE:?}: a hang"
        ))),
        Err(RecvTimeoutError::Disconnected) => Err(TestCaseError::fail(
            "handle panicked (its message is printed above)",
        )),
    }
}

// --- What every answer must satisfy -----------------------------------------

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// The media type a GraphQL answer must have, per RFC 9110 §12.5.1: each
/// of our two types takes the quality of the most specific range that
/// matches it (exact, `application/*`, `*/*`); the higher wins, a tie
/// goes to `application/graphql-response+json` only if it was named, else
/// to `application/json` (as without `Accept`); `None` if both are 0.
fn expected_media(accept: Option<&str>) -> Option<&'static str> {
    let Some(accept) = accept.filter(|accept| !accept.trim().is_empty()) else {
        return Some(JSON);
    };
    let quality = |ours: &str| {
        let mut best: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let specificity = match media_type.as_str() {
                exact if exact == ours => 3,
                "application/*" => 2,
                "*/*" => 1,
                _ => continue,
            };
            let q = parts
                .find_map(|parameter| {
                    let (name, value) = parameter.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("q").then(|| {
                        value
                            .trim()
                            .parse::<f32>()
                            .ok()
                            .filter(|q| (0.0..=1.0).contains(q))
                            .unwrap_or(0.0)
                    })
                })
                .unwrap_or(1.0);
            if best.is_none_or(|(seen, _)| specificity > seen) {
                best = Some((specificity, q));
            }
        }
        best.map_or((0.0, false), |(specificity, q)| (q, specificity == 3))
    };
    let ((graphql, graphql_named), (json, _)) = (quality(GRAPHQL_JSON), quality(JSON));
    if graphql <= 0.0 && json <= 0.0 {
        None
    } else if json > graphql || (json == graphql && !graphql_named) {
        Some(JSON)
    } else {
        Some(GRAPHQL_JSON)
    }
}

/// Whether the query string has a `query` parameter (decoded as
/// `application/x-www-form-urlencoded`); malformed ones have none.
fn has_query_parameter(query: Option<&str>) -> bool {
    fn decode(text: &str) -> Option<String> {
        let mut bytes = Vec::new();
        let mut input = text.bytes();
        while let Some(byte) = input.next() {
            bytes.push(match byte {
                b'+' => b' ',
                b'%' => {
                    let high = char::from(input.next()?).to_digit(16)?;
                    let low = char::from(input.next()?).to_digit(16)?;
                    u8::try_from(high * 16 + low).ok()?
                }
                other => other,
            });
        }
        String::from_utf8(bytes).ok()
    }
    let Some(query) = query else { return false };
    let mut found = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(name), Some(_)) = (decode(name), decode(value)) else {
            return false;
        };
        found |= name == "query";
    }
    found
}

fn check(
    scenario: &Scenario,
    request: &HttpRequest,
    response: &HttpResponse,
) -> Result<(), TestCaseError> {
    let status = response.status;
    let faulted = !scenario.faults.is_empty();
    let auth_on = !matches!(scenario.auth, Auth::Off(_));
    prop_assert!((200..600).contains(&status), "status {}", status);
    prop_assert!(
        status < 500 || (status == 503 && faulted && auth_on),
        "status {} without a failing dependency: {}",
        status,
        String::from_utf8_lossy(&response.body)
    );
    let content_types: Vec<&str> = response
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
        .collect();
    prop_assert_eq!(content_types.len(), 1, "{:?}", response.headers);
    let content_type = content_types[0];

    let endpoint = request.path == "/graphql";
    let accept = header(&request.headers, "accept");
    let browser = endpoint
        && request.method == "GET"
        && scenario.introspection
        && accept.is_some_and(|accept| accept.contains("text/html"))
        && !has_query_parameter(request.query.as_deref());
    prop_assert_eq!(
        content_type.starts_with("text/html"),
        browser,
        "GraphiQL exactly for a browser's GET without a query; got {} {}",
        status,
        content_type
    );
    if browser {
        prop_assert_eq!(status, 200);
        return Ok(());
    }

    let body: Value = match serde_json::from_slice(&response.body) {
        Ok(body) => body,
        Err(error) => {
            return Err(TestCaseError::fail(format!(
                "the body is not JSON ({error}): {}",
                String::from_utf8_lossy(&response.body)
            )));
        }
    };
    let answers: Vec<&Value> = match &body {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    prop_assert!(!answers.is_empty(), "an empty batch answer");
    let mut codes = Vec::new();
    for answer in &answers {
        prop_assert!(answer.is_object(), "{}", body);
        match answer.get("errors") {
            Some(errors) => {
                let errors = errors.as_array();
                prop_assert!(errors.is_some_and(|errors| !errors.is_empty()), "{}", body);
                for error in errors.into_iter().flatten() {
                    prop_assert!(error["message"].is_string(), "no message: {}", body);
                    let code = error["extensions"]["code"].as_str().unwrap_or("");
                    prop_assert!(!code.is_empty(), "an error without a code: {}", body);
                    codes.push(code);
                }
            }
            None => prop_assert!(answer.get("data").is_some(), "{}", body),
        }
    }
    if !(200..300).contains(&status) {
        prop_assert!(body.is_object() && !codes.is_empty(), "{} {}", status, body);
    }
    if !faulted {
        prop_assert!(!codes.contains(&"INTERNAL"), "{}", body);
    }

    let media = expected_media(accept);
    let graphql_answer =
        status == 200 || (status == 400 && codes.iter().all(|code| code.starts_with("GRAPHQL_")));
    let negotiated = endpoint && matches!(request.method.as_str(), "GET" | "POST");
    if status == 406 {
        prop_assert_eq!(media, None, "406 for Accept {:?}", accept);
    } else if negotiated && media.is_none() {
        prop_assert!(
            false,
            "Accept {:?} takes neither type, got {}",
            accept,
            status
        );
    }
    if graphql_answer {
        prop_assert_eq!(Some(content_type), media, "Accept {:?}: {}", accept, body);
        if status == 400 {
            prop_assert_eq!(content_type, GRAPHQL_JSON, "request errors are 200 in JSON");
        }
    } else {
        prop_assert_eq!(content_type, JSON, "refusals are plain JSON: {}", body);
    }

    prop_assert_eq!(status == 404, !endpoint, "{}", body);
    if endpoint && !matches!(request.method.as_str(), "GET" | "POST") {
        prop_assert_eq!(status, 405);
    }
    if status == 405 {
        prop_assert!(
            header(&response.headers, "allow").is_some(),
            "405 without allow"
        );
    }
    if status == 401 {
        let first = header(&request.headers, "authorization");
        prop_assert!(auth_on && first.is_some(), "401 without a token: {}", body);
        prop_assert_eq!(codes.as_slice(), &["UNAUTHENTICATED"][..]);
        prop_assert!(header(&response.headers, "www-authenticate").is_some());
        let valid = matches!(scenario.auth, Auth::Valid(..))
            && request
                .headers
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
                .count()
                == 1;
        let rejected = scenario
            .faults
            .iter()
            .any(|(op, _)| *op == Op::Authenticate);
        prop_assert!(!valid || rejected, "a valid token refused: {}", body);
    }
    if status == 503 {
        prop_assert!(
            codes.iter().all(|code| code.starts_with("DEPENDENCY_")),
            "{}",
            body
        );
    }
    Ok(())
}

/// A request whose body and long fields print as (cut) text, so that a
/// failing case can be read.
#[derive(Clone)]
struct Request(HttpRequest);

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = |text: &str| -> String {
            match text.char_indices().nth(2_000) {
                Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
                None => text.to_string(),
            }
        };
        let request = &self.0;
        f.debug_struct("HttpRequest")
            .field("method", &request.method)
            .field("path", &cut(&request.path))
            .field("query", &request.query.as_deref().map(cut))
            .field("headers", &request.headers)
            .field("body", &cut(&String::from_utf8_lossy(&request.body)))
            .finish()
    }
}

// --- Generators: values ------------------------------------------------------

fn strings(items: &[&'static str]) -> BoxedStrategy<String> {
    select(items.to_vec()).prop_map(str::to_string).boxed()
}

/// Ids that exist, ids that do not, and values that break rules.
fn odd_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => strings(&[
            "user_123", "user_456", "user_inactive", "support_1", "showtime_456",
            "booking_123", "booking_999", "A1", "A2", "B5", "card_token_xyz",
            "credit_card", "k-1", "",
        ]),
        2 => strings(&[
            " ", "user 123", "\u{0}", "\n\t", "\"", "\\", "'", "ユーザー", "💥🎬",
            "\u{202e}rtl", "\u{200b}", "Ä1", "a\u{7f}", "null", "{}", "$v0", "%00",
            "fake-token-1", "\u{feff}", "A-1", "\u{10ffff}",
        ]),
        1 => (
            strings(&["x", "é", "💥", "A1", " ", "\u{0}"]),
            select(vec![8usize, 9, 128, 129, 255, 256, 513, 1024, 1025, 70_000]),
        )
            .prop_map(|(unit, count)| unit.repeat(count)),
        2 => vec(any::<char>(), 0..24).prop_map(String::from_iter),
    ]
    .boxed()
}

/// Realistic ids mostly, odd strings sometimes: values that parse and
/// validate, so the request reaches the resolvers.
fn tame_string() -> BoxedStrategy<String> {
    prop_oneof![
        6 => strings(&[
            "user_123", "user_456", "showtime_456", "booking_123", "A1", "B5",
            "card_token_xyz", "credit_card",
        ]),
        1 => odd_string(),
    ]
    .boxed()
}

/// `Some` with `probability`, which may be 0 or 1 (`option::weighted`
/// takes neither).
fn maybe<S>(probability: f64, strategy: S) -> BoxedStrategy<Option<S::Value>>
where
    S: Strategy + 'static,
    S::Value: Clone + fmt::Debug,
{
    match probability {
        p if p <= 0.0 => Just(None).boxed(),
        p if p >= 1.0 => strategy.prop_map(Some).boxed(),
        p => option::weighted(p, strategy).boxed(),
    }
}

/// The weight of a way to break a request: none in tame mode.
fn wild_weight(wild: bool, weight: u32) -> u32 {
    if wild { weight } else { 0 }
}

/// A weighted choice; choices of weight 0 are left out (`Union` refuses
/// them).
fn choose<T: fmt::Debug + 'static>(choices: Vec<(u32, BoxedStrategy<T>)>) -> BoxedStrategy<T> {
    let choices: Vec<_> = choices
        .into_iter()
        .filter(|(weight, _)| *weight > 0)
        .collect();
    Union::new_weighted(choices).boxed()
}

/// A GraphQL string literal: escaped; when wild, also a block string or
/// raw (likely broken) between quotes.
fn string_literal(wild: bool) -> BoxedStrategy<String> {
    if !wild {
        return tame_string()
            .prop_map(|text| serde_json::to_string(&text).expect("a string encodes"))
            .boxed();
    }
    (odd_string(), 0u8..10)
        .prop_map(|(text, style)| match style {
            0 => format!("\"\"\"{}\"\"\"", text.replace("\"\"\"", "\\\"\"\"")),
            1 => format!("\"{text}\""),
            _ => serde_json::to_string(&text).expect("a string encodes"),
        })
        .boxed()
}

fn int_literal(wild: bool) -> BoxedStrategy<String> {
    if !wild {
        return strings(&[
            "0",
            "1",
            "-1",
            "3",
            "50",
            "100",
            "101",
            "2147483647",
            "-2147483648",
        ]);
    }
    strings(&[
        "0",
        "1",
        "-1",
        "50",
        "100",
        "101",
        "2147483647",
        "-2147483648",
        "2147483648",
        "-2147483649",
        "9223372036854775808",
        "99999999999999999999999999",
        "1.5",
        "-0",
        "1e3",
        "1e400",
        "0x10",
        "01",
        "--1",
        "NaN",
    ])
}

fn variable_ref() -> BoxedStrategy<String> {
    strings(&["$v0", "$v1", "$v2", "$v3", "$undeclared", "$"])
}

/// Any GraphQL value literal, nested a little.
fn any_literal() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        3 => string_literal(true),
        2 => int_literal(true),
        1 => strings(&["true", "false", "null", "CONFIRMED", "PENDING", "NOPE"]),
        1 => variable_ref(),
    ];
    leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            vec((strings(&["a", "userId", "first", "v0"]), inner), 0..3).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(name, value)| format!("{name}: {value}"))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
    .boxed()
}

fn idempotency_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => strings(&["k-1", "k-2", "550e8400-e29b-41d4-a716-446655440000"]),
        2 => strings(&["", " ", "a b", "\t", "ключ", "k\u{0}", "k\n", "💥"]),
        1 => select(vec![254usize, 255, 256, 10_000]).prop_map(|length| "k".repeat(length)),
        1 => odd_string(),
    ]
    .boxed()
}

/// A value for the argument `name`: of the right type; when wild, also
/// of any type or a variable.
fn argument_value(name: &'static str, wild: bool) -> BoxedStrategy<String> {
    let typed = match name {
        "seatNumbers" => prop_oneof![
            6 => vec(prop_oneof![6 => strings(&["A1", "A2", "B5", "A1"]), 1 => odd_string()], 0..5)
                .prop_map(|seats| {
                    let seats: Vec<String> = seats
                        .iter()
                        .map(|seat| serde_json::to_string(seat).expect("encodes"))
                        .collect();
                    format!("[{}]", seats.join(", "))
                }),
            1 => string_literal(wild),
        ]
        .boxed(),
        "first" => int_literal(wild),
        "idempotencyKey" => idempotency_key()
            .prop_map(|key| serde_json::to_string(&key).expect("encodes"))
            .boxed(),
        _ if !wild => {
            // The value that lets the operation go through, mostly.
            let fitting = match name {
                "userId" => "user_123",
                "showtimeId" => "showtime_456",
                "bookingId" => "booking_123",
                "paymentMethod" => "credit_card",
                "paymentDetails" => "card_token_xyz",
                _ => "c1",
            };
            prop_oneof![3 => Just(fitting.to_string()), 1 => tame_string()]
                .prop_map(|text| serde_json::to_string(&text).expect("a string encodes"))
                .boxed()
        }
        _ => string_literal(wild),
    };
    choose(vec![
        (6, typed),
        (wild_weight(wild, 2), variable_ref()),
        (wild_weight(wild, 2), any_literal()),
    ])
}

fn arguments(names: &'static [&'static str], wild: bool) -> BoxedStrategy<String> {
    let each: Vec<BoxedStrategy<Option<String>>> = names
        .iter()
        .map(|name| {
            let optional = matches!(*name, "first" | "after" | "idempotencyKey");
            let present = match (wild, optional) {
                (true, _) => 0.85,
                (false, true) => 0.4,
                (false, false) => 1.0,
            };
            maybe(present, argument_value(name, wild))
                .prop_map(move |value| value.map(|value| format!("{name}: {value}")))
                .boxed()
        })
        .collect();
    let extra = maybe(
        if wild { 0.08 } else { 0.0 },
        strings(&[
            "bogus: 1",
            "userId: \"user_123\"",
            "first: 1, first: 2",
            "bookingId: null",
        ]),
    );
    (each, extra)
        .prop_map(|(each, extra)| {
            let list: Vec<String> = each.into_iter().flatten().chain(extra).collect();
            if list.is_empty() {
                String::new()
            } else {
                format!("({})", list.join(", "))
            }
        })
        .boxed()
}

// --- Generators: documents from the schema ----------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Query,
    Mutation,
    Booking,
    Event,
    CreatePayload,
    PaymentPayload,
    CancelPayload,
    Page,
    ShowtimeSeats,
    Showtime,
    Seat,
}

struct Field {
    name: &'static str,
    arguments: &'static [&'static str],
    of: Option<Ty>,
}

const fn field(name: &'static str, arguments: &'static [&'static str], of: Option<Ty>) -> Field {
    Field {
        name,
        arguments,
        of,
    }
}

const fn scalar(name: &'static str) -> Field {
    field(name, &[], None)
}

const QUERY: &[Field] = &[
    field("getBooking", &["bookingId"], Some(Ty::Booking)),
    field(
        "getUserBookings",
        &["userId", "first", "after"],
        Some(Ty::Booking),
    ),
    field(
        "userBookingsPage",
        &["userId", "first", "after"],
        Some(Ty::Page),
    ),
    field("showtimeSeats", &["showtimeId"], Some(Ty::ShowtimeSeats)),
    field("bookingEvents", &["bookingId"], Some(Ty::Event)),
    scalar("logicVersion"),
    scalar("logicSha256"),
];
const MUTATION: &[Field] = &[
    field(
        "createBooking",
        &["userId", "showtimeId", "seatNumbers", "idempotencyKey"],
        Some(Ty::CreatePayload),
    ),
    field(
        "processPayment",
        &[
            "bookingId",
            "paymentMethod",
            "paymentDetails",
            "idempotencyKey",
        ],
        Some(Ty::PaymentPayload),
    ),
    field(
        "cancelBooking",
        &["bookingId", "idempotencyKey"],
        Some(Ty::CancelPayload),
    ),
];
const BOOKING: &[Field] = &[
    scalar("id"),
    scalar("userId"),
    scalar("showtimeId"),
    scalar("seats"),
    scalar("totalAmount"),
    scalar("totalCents"),
    scalar("currency"),
    scalar("status"),
    scalar("lockId"),
    scalar("lockExpiresAt"),
    scalar("paymentTransactionId"),
    scalar("failureReason"),
    scalar("createdAt"),
    scalar("updatedAt"),
    field("events", &[], Some(Ty::Event)),
];
const EVENT: &[Field] = &[
    scalar("id"),
    scalar("type"),
    scalar("occurredAt"),
    scalar("bookingId"),
    scalar("userId"),
    scalar("showtimeId"),
    scalar("seats"),
    scalar("amountCents"),
    scalar("currency"),
    scalar("status"),
    scalar("reason"),
];
const CREATE_PAYLOAD: &[Field] = &[
    scalar("success"),
    scalar("message"),
    scalar("lockId"),
    scalar("code"),
    field("booking", &[], Some(Ty::Booking)),
];
const PAYLOAD: &[Field] = &[
    scalar("success"),
    scalar("message"),
    scalar("code"),
    field("booking", &[], Some(Ty::Booking)),
];
const PAGE: &[Field] = &[field("items", &[], Some(Ty::Booking)), scalar("nextCursor")];
const SHOWTIME_SEATS: &[Field] = &[
    field("showtime", &[], Some(Ty::Showtime)),
    field("seats", &[], Some(Ty::Seat)),
];
const SHOWTIME: &[Field] = &[
    scalar("id"),
    scalar("movieId"),
    scalar("movieTitle"),
    scalar("theater"),
    scalar("startsAt"),
    scalar("currency"),
    scalar("totalSeats"),
    scalar("availableSeats"),
];
const SEAT: &[Field] = &[
    scalar("number"),
    scalar("row"),
    scalar("priceCents"),
    scalar("price"),
    scalar("status"),
];

const TYPES: [Ty; 11] = [
    Ty::Query,
    Ty::Mutation,
    Ty::Booking,
    Ty::Event,
    Ty::CreatePayload,
    Ty::PaymentPayload,
    Ty::CancelPayload,
    Ty::Page,
    Ty::ShowtimeSeats,
    Ty::Showtime,
    Ty::Seat,
];

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Query => "Query",
            Ty::Mutation => "Mutation",
            Ty::Booking => "Booking",
            Ty::Event => "BookingEvent",
            Ty::CreatePayload => "CreateBookingPayload",
            Ty::PaymentPayload => "PaymentPayload",
            Ty::CancelPayload => "CancelBookingPayload",
            Ty::Page => "BookingPage",
            Ty::ShowtimeSeats => "ShowtimeSeats",
            Ty::Showtime => "Showtime",
            Ty::Seat => "Seat",
        }
    }

    fn fields(self) -> &'static [Field] {
        match self {
            Ty::Query => QUERY,
            Ty::Mutation => MUTATION,
            Ty::Booking => BOOKING,
            Ty::Event => EVENT,
            Ty::CreatePayload => CREATE_PAYLOAD,
            Ty::PaymentPayload | Ty::CancelPayload => PAYLOAD,
            Ty::Page => PAGE,
            Ty::ShowtimeSeats => SHOWTIME_SEATS,
            Ty::Showtime => SHOWTIME,
            Ty::Seat => SEAT,
        }
    }
}

/// Inline fragments nest selection sets of the same type this deep.
const FRAGMENT_NESTING: u32 = 2;

fn selection_set(ty: Ty, depth: u32, wild: bool) -> BoxedStrategy<String> {
    let items = if wild { 1..5 } else { 1..3 };
    let items = vec(selection(ty, depth, wild), items)
        .prop_map(|items| format!("{{ {} }}", items.join(" ")));
    choose(vec![
        (20, items.boxed()),
        (wild_weight(wild, 1), Just("{ }".to_string()).boxed()),
    ])
}

fn selection(ty: Ty, depth: u32, wild: bool) -> BoxedStrategy<String> {
    let fields = Union::new(
        ty.fields()
            .iter()
            .map(|field| field_selection(field, depth, wild)),
    );
    let mut choices: Vec<(u32, BoxedStrategy<String>)> = vec![
        (12, fields.boxed()),
        (1, Just("__typename".to_string()).boxed()),
        (
            wild_weight(wild, 1),
            strings(&["nope", "id(x: 1)", "logicVersion { id }"]),
        ),
        (
            wild_weight(wild, 1),
            strings(&["...F0", "...F1", "...F2", "...Missing"]),
        ),
    ];
    if ty == Ty::Query {
        let introspection = strings(&[
            "__schema { queryType { name } types { name kind } }",
            "__type(name: \"Booking\") { name fields { name } }",
        ]);
        choices.push((1, introspection));
    }
    if depth < FRAGMENT_NESTING {
        let condition = maybe(
            0.7,
            choose(vec![
                (3, Just(ty.name()).boxed()),
                (
                    wild_weight(wild, 1),
                    select(TYPES.map(Ty::name).to_vec()).boxed(),
                ),
                (wild_weight(wild, 1), Just("Nope").boxed()),
            ]),
        );
        let directive = directive(wild);
        let inline = (condition, directive, selection_set(ty, depth + 1, wild)).prop_map(
            |(condition, directive, set)| match condition {
                Some(name) => format!("... on {name}{directive} {set}"),
                None => format!("...{directive} {set}"),
            },
        );
        choices.push((2, inline.boxed()));
    }
    choose(choices)
}

fn directive(wild: bool) -> BoxedStrategy<String> {
    if !wild {
        let valid = strings(&[
            " @skip(if: false)",
            " @include(if: true)",
            " @skip(if: true)",
        ]);
        return maybe(0.03, valid)
            .prop_map(Option::unwrap_or_default)
            .boxed();
    }
    maybe(
        0.1,
        strings(&[
            " @skip(if: true)",
            " @include(if: false)",
            " @include(if: $v0)",
            " @skip(if: \"yes\")",
            " @deprecated",
            " @nope",
            " @skip",
            " @skip(if: true) @skip(if: false)",
        ]),
    )
    .prop_map(Option::unwrap_or_default)
    .boxed()
}

fn field_selection(field: &'static Field, depth: u32, wild: bool) -> BoxedStrategy<String> {
    let alias = maybe(
        if wild { 0.2 } else { 0.0 },
        strings(&[
            "a: ",
            "b: ",
            "a: ",
            "getBooking: ",
            "id: ",
            "__typename: ",
            "ünï: ",
        ]),
    )
    .prop_map(Option::unwrap_or_default);
    let below: BoxedStrategy<String> = match field.of {
        Some(of) => maybe(
            if wild { 0.95 } else { 1.0 },
            selection_set(of, depth, wild),
        )
        .prop_map(Option::unwrap_or_default)
        .boxed(),
        None => maybe(if wild { 0.03 } else { 0.0 }, Just("{ id }".to_string()))
            .prop_map(Option::unwrap_or_default)
            .boxed(),
    };
    (
        alias,
        arguments(field.arguments, wild),
        directive(wild),
        below,
    )
        .prop_map(move |(alias, arguments, directive, below)| {
            format!("{alias}{}{arguments}{directive} {below}", field.name)
        })
        .boxed()
}

fn variable_definitions() -> BoxedStrategy<String> {
    let definition = (
        0u8..4,
        strings(&[
            "String",
            "String!",
            "Int",
            "Int!",
            "[String!]!",
            "[String!]",
            "[String]",
            "Boolean!",
            "Float",
            "ID!",
            "BookingStatus",
            "Nope",
            "String!!",
            "[Int!]!",
        ]),
        maybe(0.15, any_literal()),
    )
        .prop_map(|(index, ty, default)| match default {
            Some(default) => format!("$v{index}: {ty} = {default}"),
            None => format!("$v{index}: {ty}"),
        });
    vec(definition, 0..4)
        .prop_map(|definitions| {
            if definitions.is_empty() {
                String::new()
            } else {
                format!("({})", definitions.join(", "))
            }
        })
        .boxed()
}

fn operation_name() -> BoxedStrategy<Option<String>> {
    maybe(0.6, strings(&["A", "B", "Op", "op", "A"])).boxed()
}

/// One operation: its kind, name, variables (when wild) and selections.
fn operation(wild: bool) -> BoxedStrategy<String> {
    let variables = if wild {
        variable_definitions()
    } else {
        Just(String::new()).boxed()
    };
    let named = |kind: &'static str, root: Ty| {
        (
            operation_name(),
            variables.clone(),
            directive(wild),
            selection_set(root, 0, wild),
        )
            .prop_map(move |(name, variables, directive, set)| {
                format!(
                    "{kind} {}{variables}{directive} {set}",
                    name.unwrap_or_default()
                )
            })
    };
    choose(vec![
        (4, named("query", Ty::Query).boxed()),
        (4, named("mutation", Ty::Mutation).boxed()),
        (
            wild_weight(wild, 1),
            named("subscription", Ty::Query).boxed(),
        ),
        (2, selection_set(Ty::Query, 0, wild)),
    ])
}

fn fragment_definition() -> BoxedStrategy<String> {
    let on_type = Union::new(TYPES.map(|ty| {
        selection_set(ty, FRAGMENT_NESTING, true)
            .prop_map(move |set| (ty.name(), set))
            .boxed()
    }));
    (0u8..3, on_type)
        .prop_map(|(index, (name, set))| format!("fragment F{index} on {name} {set}"))
        .boxed()
}

/// A document from the schema: one operation that validates (mostly)
/// when tame; when wild, several operations, fragments, variables, broken
/// values and sometimes damage.
fn schema_document(wild: bool) -> BoxedStrategy<String> {
    if !wild {
        return operation(false);
    }
    let damage = maybe(0.1, (0u8..5, any::<prop::sample::Index>()));
    (
        vec(operation(true), 1..4),
        vec(fragment_definition(), 0..3),
        damage,
    )
        .prop_map(|(operations, fragments, damage)| {
            let document = format!("{} {}", operations.join("\n"), fragments.join("\n"));
            match damage {
                None => document,
                Some((0, at)) => {
                    let cut = at.index(document.len() + 1);
                    let cut = (0..=cut)
                        .rev()
                        .find(|&i| document.is_char_boundary(i))
                        .unwrap_or(0);
                    document[..cut].to_string()
                }
                Some((1, _)) => format!("{document} }}"),
                Some((2, _)) => format!("\u{feff}{document}"),
                Some((3, _)) => format!("{document} # trailing comment"),
                Some(_) => document.replace('{', "("),
            }
        })
        .boxed()
}

fn repeated(open: &str, middle: &str, close: &str, count: usize) -> String {
    format!("{}{middle}{}", open.repeat(count), close.repeat(count))
}

/// Documents at and past every limit: width, depth, fragment bombs,
/// nested literals, many operations, long tokens.
fn extreme_document() -> BoxedStrategy<String> {
    let counts = select(vec![
        1usize, 9, 10, 11, 31, 32, 33, 100, 1_999, 2_001, 5_000, 20_000,
    ]);
    (0u8..12, counts, select(vec!["logicVersion", "__typename", "getBooking(bookingId: \"booking_123\") { id status events { type } }"]))
        .prop_map(|(shape, count, leaf)| match shape {
            0 => {
                let fields: Vec<String> = (0..count).map(|i| format!("a{i}: {leaf}")).collect();
                format!("{{ {} }}", fields.join(" "))
            }
            1 => format!("{{ {} }}", repeated("... { ", leaf, " }", count)),
            2 => format!("{{ {} }}", repeated("a { ", "b", " }", count)),
            3 => format!(
                "{{ getBooking(bookingId: {}) {{ id }} }}",
                repeated("[", "\"x\"", "]", count * 5)
            ),
            4 => format!("{{ getBooking(bookingId: {}) {{ id }} }}", repeated("{a: ", "1", "}", count)),
            5 => {
                let levels = count.min(40);
                let mut document = String::from("{ ...F0 }");
                for level in 0..levels {
                    let next = level + 1;
                    document.push_str(&format!(
                        " fragment F{level} on Query {{ a: logicVersion ...F{next} ...F{next} ...F{next} }}"
                    ));
                }
                document + &format!(" fragment F{levels} on Query {{ {leaf} }}")
            }
            6 => (0..count.min(2_000))
                .map(|i| format!("query Q{i} {{ {leaf} }}"))
                .collect::<Vec<_>>()
                .join(" "),
            7 => format!("{{ {} }}", "a".repeat(count * 50)),
            8 => format!("{{ getBooking(bookingId: \"{}\") {{ id }} }}", "x".repeat(count * 50)),
            9 => {
                let variables: Vec<String> = (0..count).map(|i| format!("$v{i}: Int")).collect();
                format!("query Q({}) {{ {leaf} }}", variables.join(", "))
            }
            10 => {
                let bookings: Vec<String> = (0..count.min(300))
                    .map(|i| {
                        format!(
                            "b{i}: createBooking(userId: \"user_123\", showtimeId: \"showtime_456\", seatNumbers: [\"B{}\"]) {{ success booking {{ id }} }}",
                            i % 6
                        )
                    })
                    .collect();
                format!("mutation {{ {} }}", bookings.join(" "))
            }
            _ => "{".repeat(count * 5),
        })
        .boxed()
}

/// JSON for `variables`: mostly an object keyed by the variables the
/// documents declare, with values of any type.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        select(vec![
            0i64,
            1,
            -1,
            50,
            101,
            i64::from(i32::MAX) + 1,
            i64::MIN,
            i64::MAX
        ])
        .prop_map(Value::from),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        Just(json!(18_446_744_073_709_551_615u64)),
        odd_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((strings(&["v0", "v1", "query", "a", ""]), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
    .boxed()
}

fn variables() -> BoxedStrategy<Option<Value>> {
    let entry = (strings(&["v0", "v1", "v2", "v3", "other"]), json_value());
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Value::Null)),
        6 => vec(entry, 0..4).prop_map(|entries| Some(Value::Object(entries.into_iter().collect::<Map<_, _>>()))),
        1 => json_value().prop_map(Some),
        1 => select(vec![150usize, 5_000]).prop_map(|depth| {
            let mut value = json!("A1");
            for _ in 0..depth {
                value = Value::Array(vec![value]);
            }
            Some(json!({ "v0": value }))
        }),
    ]
    .boxed()
}

/// One GraphQL request as a client would send it.
#[derive(Debug, Clone)]
struct Call {
    document: String,
    variables: Option<Value>,
    operation_name: Option<Value>,
}

impl Call {
    fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("query".to_string(), Value::String(self.document.clone()));
        if let Some(variables) = &self.variables {
            object.insert("variables".to_string(), variables.clone());
        }
        if let Some(name) = &self.operation_name {
            object.insert("operationName".to_string(), name.clone());
        }
        Value::Object(object)
    }
}

fn call(wild: bool) -> BoxedStrategy<Call> {
    if !wild {
        let variables = prop_oneof![Just(None), Just(Some(json!({})))];
        return (schema_document(false), variables)
            .prop_map(|(document, variables)| Call {
                document,
                variables,
                operation_name: None,
            })
            .boxed();
    }
    let document = prop_oneof![8 => schema_document(true), 1 => extreme_document()];
    let name = prop_oneof![
        4 => Just(None),
        2 => strings(&["A", "B", "Op", "Q7", "Nope", "", "ä"]).prop_map(|name| Some(Value::from(name))),
        1 => Just(Some(Value::Null)),
        1 => json_value().prop_map(Some),
    ];
    (document, variables(), name)
        .prop_map(|(document, variables, operation_name)| Call {
            document,
            variables,
            operation_name,
        })
        .boxed()
}

// --- Generators: requests ----------------------------------------------------

/// What clients send: nothing, one of our types, or a browser's list.
fn tame_accept() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        Just(None),
        strings(&[
            "application/json",
            "application/graphql-response+json",
            "*/*",
            "application/graphql-response+json, application/json;q=0.9",
            "text/html,application/xhtml+xml,*/*;q=0.8",
        ])
        .prop_map(Some),
    ]
    .boxed()
}

fn accept() -> BoxedStrategy<Option<String>> {
    let range = (
        strings(&[
            "application/json",
            "application/graphql-response+json",
            "application/*",
            "*/*",
            "text/html",
            "text/plain",
            "APPLICATION/JSON",
        ]),
        strings(&[
            "",
            "",
            ";q=0",
            ";q=0.5",
            ";q=0.9",
            ";q=1",
            ";q=1.0",
            ";q=0.001",
            "; q=0.2",
            ";charset=utf-8",
            ";Q=0",
            ";q=x",
        ]),
    )
        .prop_map(|(media_type, parameters)| format!("{media_type}{parameters}"));
    prop_oneof![
        2 => Just(None),
        6 => vec(range, 1..4).prop_map(|ranges| Some(ranges.join(", "))),
        1 => strings(&["", " ", ",", ";;", "text/html,application/xhtml+xml,*/*;q=0.8"]).prop_map(Some),
        1 => odd_string().prop_map(Some),
    ]
    .boxed()
}

fn content_type() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        8 => Just(Some(JSON.to_string())),
        1 => Just(None),
        2 => strings(&[
            "application/json; charset=utf-8",
            "application/graphql-response+json",
            "APPLICATION/JSON",
            "application/graphql",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "application/vnd.api+json",
        ])
        .prop_map(Some),
    ]
    .boxed()
}

fn auth() -> BoxedStrategy<Auth> {
    let holder = select(vec![
        Holder::Owner,
        Holder::Owner,
        Holder::Other,
        Holder::Support,
    ]);
    let format = select(vec!["Bearer {}", "Bearer {}", "bearer  {} ", "BEARER {}"]);
    prop_oneof![
        3 => maybe(0.2, strings(&["Bearer nope", "garbage"])).prop_map(Auth::Off),
        2 => Just(Auth::Missing),
        5 => (holder, format).prop_map(|(holder, format)| Auth::Valid(holder, format)),
        2 => prop_oneof![
            strings(&["Bearer nope", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "", "fake-token-1", "Bearer fake-token-1 extra", "Bearer \u{0}"]),
            odd_string(),
        ]
        .prop_map(Auth::Invalid),
    ]
    .boxed()
}

fn faults() -> BoxedStrategy<Vec<(Op, Fault)>> {
    let op = select(vec![
        Op::Authenticate,
        Op::Get,
        Op::GetShowtime,
        Op::SeatMap,
        Op::LockSeats,
        Op::ReleaseSeats,
        Op::GetUser,
        Op::Charge,
        Op::Insert,
        Op::UpdateIfVersion,
        Op::ListByUser,
        Op::GetIdempotencyRecord,
        Op::InsertIdempotencyRecord,
        Op::UpdateIdempotencyRecord,
        Op::VoidCharge,
        Op::Refund,
        Op::ListUnsettled,
        Op::History,
    ]);
    let error = select(vec![0u8, 1, 2, 3, 4]).prop_map(|kind| match kind {
        0 => PortError::Unavailable("fuzz: down".into()),
        1 => PortError::Timeout("fuzz: slow".into()),
        2 => PortError::Conflict("fuzz: conflict".into()),
        3 => PortError::NotFound("fuzz: gone".into()),
        _ => PortError::Rejected("fuzz: no".into()),
    });
    let fault = (op, error, any::<bool>()).prop_map(|(op, error, after)| {
        (
            op,
            if after {
                Fault::FailAfterEffect(error)
            } else {
                Fault::Fail(error)
            },
        )
    });
    prop_oneof![3 => Just(Vec::new()), 1 => vec(fault, 1..4)].boxed()
}

fn scenario() -> BoxedStrategy<Scenario> {
    (auth(), prop::bool::weighted(0.8), faults())
        .prop_map(|(auth, introspection, faults)| Scenario {
            auth,
            introspection,
            faults,
        })
        .boxed()
}

/// `application/x-www-form-urlencoded`, sometimes with `+` for spaces.
fn form_encode(text: &str, plus: bool) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            b' ' if plus => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

fn get_query_string(call: &Call, plus: bool) -> String {
    let mut pairs = vec![format!("query={}", form_encode(&call.document, plus))];
    if let Some(variables) = &call.variables {
        pairs.push(format!(
            "variables={}",
            form_encode(&variables.to_string(), plus)
        ));
    }
    match &call.operation_name {
        Some(Value::String(name)) => {
            pairs.push(format!("operationName={}", form_encode(name, plus)))
        }
        Some(other) => pairs.push(format!(
            "operationName={}",
            form_encode(&other.to_string(), plus)
        )),
        None => {}
    }
    pairs.join("&")
}

fn request(
    method: &str,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> HttpRequest {
    HttpRequest {
        method: method.to_string(),
        path: "/graphql".to_string(),
        query,
        headers,
        body,
    }
}

/// A GraphQL request over POST (single or batch) or GET, with the
/// headers a client might send: half tame (most reach the resolvers),
/// half wild.
fn graphql_request() -> BoxedStrategy<Request> {
    prop_oneof![graphql_request_in(false), graphql_request_in(true)].boxed()
}

fn graphql_request_in(wild: bool) -> BoxedStrategy<Request> {
    let single =
        call(wild).prop_map(|call| ("POST", None, call.to_json().to_string().into_bytes()));
    let get = (call(wild), any::<bool>())
        .prop_map(|(call, plus)| ("GET", Some(get_query_string(&call, plus)), Vec::new()));
    let batch = vec(call(wild), 1..4).prop_map(|calls| {
        let batch: Vec<Value> = calls.iter().map(Call::to_json).collect();
        ("POST", None, Value::Array(batch).to_string().into_bytes())
    });
    let at_the_limit = (call(wild), select(vec![10usize, 11])).prop_map(|(call, count)| {
        let batch = vec![call.to_json(); count];
        ("POST", None, Value::Array(batch).to_string().into_bytes())
    });
    let transport = choose(vec![
        (6, single.boxed()),
        (2, get.boxed()),
        (1, batch.boxed()),
        (wild_weight(wild, 1), at_the_limit.boxed()),
    ]);
    let (accept, content_type, key) = if wild {
        (accept(), content_type(), idempotency_key())
    } else {
        (
            tame_accept(),
            prop_oneof![Just(Some(JSON.to_string())), Just(None)].boxed(),
            strings(&["k-1", "k-2", "550e8400-e29b-41d4-a716-446655440000"]),
        )
    };
    let key = maybe(0.3, key);
    (transport, accept, content_type, key)
        .prop_map(|((method, query, body), accept, content_type, key)| {
            let mut headers = Vec::new();
            if let Some(accept) = accept {
                headers.push(("Accept".to_string(), accept));
            }
            if let Some(content_type) = content_type {
                headers.push(("Content-Type".to_string(), content_type));
            }
            if let Some(key) = key {
                headers.push(("Idempotency-Key".to_string(), key));
            }
            Request(request(method, query, headers, body))
        })
        .boxed()
}

/// Requests nobody would send on purpose.
fn raw_request() -> BoxedStrategy<Request> {
    let method = prop_oneof![
        8 => strings(&["POST", "GET"]),
        2 => strings(&["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "get", "post", "", " POST", "CONNECT"]),
        1 => odd_string(),
    ];
    let path = prop_oneof![
        10 => Just("/graphql".to_string()),
        1 => strings(&["/", "/graphql/", "/GRAPHQL", "//graphql", "/graphql%20", "/health", ""]),
        1 => odd_string(),
    ];
    let query_text = prop_oneof![
        vec(
            select(vec![
                "query",
                "=",
                "&",
                "%",
                "%7B",
                "%zz",
                "%FF",
                "+",
                "variables",
                "operationName",
                "{",
                "logicVersion",
                "}",
                "%C3%A9",
                "%00"
            ]),
            0..12
        )
        .prop_map(|parts| parts.concat()),
        odd_string(),
        (schema_document(true), json_value()).prop_map(|(document, variables)| {
            format!(
                "query={}&variables={}",
                form_encode(&document, false),
                form_encode(&variables.to_string(), true)
            )
        }),
        Just(format!("query={}", "a".repeat(MAX_BODY_BYTES))),
    ];
    let query = maybe(0.5, query_text);
    let name = prop_oneof![
        6 => strings(&["Accept", "accept", "ACCEPT", "Content-Type", "content-type", "Authorization", "Idempotency-Key", "X-Other"]),
        1 => odd_string(),
    ];
    let value = prop_oneof![
        accept().prop_map(Option::unwrap_or_default),
        content_type().prop_map(Option::unwrap_or_default),
        auth().prop_map(|auth| match auth {
            Auth::Invalid(header) | Auth::Off(Some(header)) => header,
            _ => "Bearer fake-token-1".to_string(),
        }),
        idempotency_key(),
    ];
    let headers = vec((name, value), 0..6);
    let body = prop_oneof![
        3 => vec(any::<u8>(), 0..256),
        3 => json_value().prop_map(|value| value.to_string().into_bytes()),
        3 => (prop_oneof![json_value(), schema_document(true).prop_map(Value::from)], json_value(), json_value())
            .prop_map(|(query, variables, name)| {
                json!({ "query": query, "variables": variables, "operationName": name })
                    .to_string()
                    .into_bytes()
            }),
        1 => select(vec![0u8, 1, 2, 3]).prop_map(|shape| match shape {
            0 => vec![b' '; MAX_BODY_BYTES + 1],
            1 => repeated("[", "", "]", 100_000).into_bytes(),
            2 => format!("{{\"query\": \"{}\"}}", "{".repeat(MAX_BODY_BYTES - 20)).into_bytes(),
            _ => b"{\"query\": \"{ logicVersion }\", \"query\": 5}".to_vec(),
        }),
    ];
    (method, path, query, headers, body)
        .prop_map(|(method, path, query, headers, body)| {
            Request(HttpRequest {
                method,
                path,
                query,
                headers,
                body,
            })
        })
        .boxed()
}

// --- The properties ------------------------------------------------------------

/// Runs generated cases through `run` and `check` (panicking with the
/// shrunk input on the first failure) and counts their outcomes.
/// Runs the cases on a thread with a large stack: generating, and above
/// all shrinking, deeply nested documents recurses deeply (a CI run
/// overflowed the default 2 MiB test thread), and a crash would hide the
/// failing input.
fn fuzz(default_cases: u32, requests: fn() -> BoxedStrategy<Request>) -> BTreeMap<String, usize> {
    thread::Builder::new()
        .name("fuzz runner".to_string())
        .stack_size(256 << 20)
        .spawn(move || fuzz_on_this_thread(default_cases, requests()))
        .expect("a runner thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn fuzz_on_this_thread(
    default_cases: u32,
    requests: BoxedStrategy<Request>,
) -> BTreeMap<String, usize> {
    let tally = RefCell::new(BTreeMap::new());
    let mut runner = TestRunner::new(config(default_cases));
    let result = runner.run(&(scenario(), requests), |(scenario, request)| {
        let (sent, response) = run(&scenario, request.0)?;
        check(&scenario, &sent, &response)?;
        *tally.borrow_mut().entry(outcome(&response)).or_insert(0) += 1;
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let tally = tally.into_inner();
    eprintln!("outcomes: {tally:#?}");
    tally
}

/// The status and what the body says: the first error code, `data` when
/// some field answered, `success` when a mutation went through.
fn outcome(response: &HttpResponse) -> String {
    let text = String::from_utf8_lossy(&response.body);
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let first = match &body {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        one => one.clone(),
    };
    let answered = first["data"]
        .as_object()
        .is_some_and(|fields| fields.values().any(|value| !value.is_null()));
    let what = if text.contains("\"success\":true") {
        "success"
    } else if answered {
        "data"
    } else if let Some(code) = first["errors"][0]["extensions"]["code"].as_str() {
        code
    } else if first.is_object() {
        "null"
    } else {
        "html"
    };
    format!("{} {what}", response.status)
}

fn count(tally: &BTreeMap<String, usize>, prefix: &str) -> usize {
    tally
        .iter()
        .filter(|(outcome, _)| outcome.starts_with(prefix))
        .map(|(_, count)| count)
        .sum()
}

#[test]
fn generated_graphql_requests_get_well_formed_answers() {
    let tally = fuzz(3_500, graphql_request);
    // The generators reach past the parser into resolvers, and around.
    let total: usize = tally.values().sum();
    for (outcome, share) in [
        ("200 data", 5),
        ("200 success", 1),
        // Request errors: 400 with graphql-response+json, 200 with JSON.
        ("400 GRAPHQL_", 2),
        ("200 GRAPHQL_", 5),
        ("401", 1),
    ] {
        assert!(
            count(&tally, outcome) * 100 >= total * share,
            "under {share} % of cases were {outcome}"
        );
    }
}

#[test]
fn raw_requests_get_well_formed_answers() {
    fuzz(1_500, raw_request);
}

/// Inputs that found bugs, kept as fixed cases.
#[test]
fn inputs_that_found_bugs_get_well_formed_answers() {
    let post = |document: String, accept: &str| {
        let body = json!({ "query": document }).to_string().into_bytes();
        request(
            "POST",
            None,
            vec![("Accept".to_string(), accept.to_string())],
            body,
        )
    };
    let cases = [
        // A list literal nested 100,000 deep overflowed the parser's stack.
        post(
            format!(
                "{{ getBooking(bookingId: {}) {{ id }} }}",
                repeated("[", "1", "]", 100_000)
            ),
            JSON,
        ),
        post(
            format!(
                "{{ getBooking(bookingId: {}) {{ id }} }}",
                repeated("{a: ", "1", "}", 20_000)
            ),
            JSON,
        ),
        // `Q=0` refused nothing, and `*/*` outranked an explicit `q=0`.
        post("{ logicVersion }".to_string(), "application/json;Q=0"),
        post(
            "{ logicVersion }".to_string(),
            "application/graphql-response+json;q=0, */*",
        ),
    ];
    let scenario = Scenario {
        auth: Auth::Off(None),
        introspection: true,
        faults: Vec::new(),
    };
    for request in cases {
        let (sent, response) = run(&scenario, request).expect("an answer");
        if let Err(failure) = check(&scenario, &sent, &response) {
            panic!("{failure}: {:?}", Request(sent));
        }
    }
}

/// The oracle's media type rules on their own, so a failure above can be
/// told apart from a mistake in the model.
#[test]
fn the_media_type_model_follows_rfc_9110() {
    let cases = [
        (None, Some(JSON)),
        (Some(""), Some(JSON)),
        (Some("application/json"), Some(JSON)),
        (Some("*/*"), Some(JSON)),
        (Some("application/*"), Some(JSON)),
        (
            Some("application/graphql-response+json, */*"),
            Some(GRAPHQL_JSON),
        ),
        (
            Some("application/json, application/graphql-response+json"),
            Some(GRAPHQL_JSON),
        ),
        (
            Some("application/json, application/graphql-response+json;q=0.5"),
            Some(JSON),
        ),
        (
            Some("application/graphql-response+json;q=0, */*"),
            Some(JSON),
        ),
        (Some("application/json;q=0, */*"), Some(GRAPHQL_JSON)),
        (Some("application/json;Q=0"), None),
        (Some("text/html"), None),
        (Some("application/json;q=x"), None),
    ];
    for (accept, expected) in cases {
        assert_eq!(expected_media(accept), expected, "{accept:?}");
    }
}
