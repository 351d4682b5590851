//! Subscriptions as a host drives them: `start` for each subscriber,
//! `project` for each batch of committed events, over the fakes.

use futures::executor::block_on;
use serde_json::{Value, json};

use super::*;
use crate::model::Timestamp;
use crate::settings::Settings;
use crate::testing::Fakes;

const START: Timestamp = 1_700_000_000_000;
const SEAT_MAP: &str = "subscription($id: String!) { seatMap(showtimeId: $id) { showtimeId snapshot seats { number status } } }";
const STATUS: &str =
    "subscription($id: String!) { bookingStatus(bookingId: $id) { id status lockExpiresAt } }";

fn setup() -> (Fakes, Arc<Workflow>) {
    let fakes = Fakes::sample(START);
    fakes.users.add_user("user_456", true);
    let workflow = Arc::new(Workflow::new(fakes.ports(), Settings::default()));
    (fakes, workflow)
}

fn request(query: &str, id: &str) -> String {
    json!({ "query": query, "variables": { "id": id } }).to_string()
}

fn parse(message: &str) -> Value {
    serde_json::from_str(message).expect("JSON")
}

fn codes(refusal: &str) -> Vec<String> {
    parse(refusal)
        .as_array()
        .expect("an array of errors")
        .iter()
        .map(|error| {
            error["extensions"]["code"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn a_seat_map_starts_with_a_snapshot_and_projects_each_batch_of_bookings() {
    let (fakes, workflow) = setup();
    let started = block_on(start(
        workflow.clone(),
        &request(SEAT_MAP, "showtime_456"),
        None,
    ))
    .expect("public");
    assert_eq!(started.topic.as_deref(), Some("showtime:showtime_456"));
    assert_eq!(started.owner, None);
    let snapshot = parse(&started.initial[0]);
    assert_eq!(snapshot["data"]["seatMap"]["snapshot"], true);
    assert_eq!(
        snapshot["data"]["seatMap"]["seats"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    let created = block_on(workflow.create_booking(
        "user_123",
        "showtime_456",
        vec!["A1".into(), "A2".into()],
    ))
    .expect("created");
    let events = fakes.events.published();
    let messages = block_on(project(
        workflow.clone(),
        &started.projection,
        events.clone(),
    ));
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        parse(&messages[0])["data"]["seatMap"],
        json!({ "showtimeId": "showtime_456", "snapshot": false, "seats": [
            { "number": "A1", "status": "LOCKED" }, { "number": "A2", "status": "LOCKED" },
        ] })
    );

    // Events that change nothing it shows make no message.
    let mut other = events[0].clone();
    other.showtime_id = "showtime_789".into();
    assert!(block_on(project(workflow.clone(), &started.projection, vec![other])).is_empty());

    block_on(workflow.cancel_booking(&created.booking.id)).expect("cancelled");
    let all = fakes.events.published();
    let messages = block_on(project(
        workflow,
        &started.projection,
        all[events.len()..].to_vec(),
    ));
    assert_eq!(
        parse(&messages[0])["data"]["seatMap"]["seats"],
        json!([{ "number": "A1", "status": "AVAILABLE" }, { "number": "A2", "status": "AVAILABLE" }])
    );
}

#[test]
fn booking_status_is_for_its_owner_or_support_and_follows_an_extension() {
    let (fakes, workflow) = setup();
    let created = block_on(workflow.create_booking("user_123", "showtime_456", vec!["B1".into()]))
        .expect("created");
    let id = created.booking.id.clone();
    let far = START + 3_600_000;
    let owner = fakes.users.issue_token("user_123", &[], far);
    let stranger = fakes.users.issue_token("user_456", &[], far);
    let support = fakes.users.issue_token("support_1", &["support"], far);

    let refused = block_on(start(
        workflow.clone(),
        &request(STATUS, &id),
        Some(&stranger),
    ))
    .unwrap_err();
    assert_eq!(codes(&refused), ["FORBIDDEN"]);
    let refused = block_on(start(workflow.clone(), &request(STATUS, &id), None)).unwrap_err();
    assert_eq!(codes(&refused), ["UNAUTHENTICATED"]);
    let refused = block_on(start(
        workflow.clone(),
        &request(STATUS, &id),
        Some("forged"),
    ))
    .unwrap_err();
    assert_eq!(codes(&refused), ["UNAUTHENTICATED"]);
    let refused = block_on(start(
        workflow.clone(),
        &request(STATUS, "no-such-booking"),
        Some(&owner),
    ))
    .unwrap_err();
    assert_eq!(codes(&refused), ["BOOKING_NOT_FOUND"]);
    assert!(
        block_on(start(
            workflow.clone(),
            &request(STATUS, &id),
            Some(&support)
        ))
        .is_ok()
    );

    let started =
        block_on(start(workflow.clone(), &request(STATUS, &id), Some(&owner))).expect("owner");
    assert_eq!(started.topic, Some(format!("booking:{id}")));
    assert_eq!(started.owner.as_deref(), Some("user_123"));
    assert_eq!(started.expires_at, Some(far));
    assert_eq!(
        parse(&started.initial[0])["data"]["bookingStatus"]["status"],
        "PENDING"
    );

    let before = fakes.events.published().len();
    fakes.env.advance_secs(200);
    let extended = block_on(workflow.extend_lock(&id)).expect("extended");
    assert_eq!(extended.lock_expires_at, START + 500_000);
    let events = fakes.events.published()[before..].to_vec();
    let messages = block_on(project(workflow, &started.projection, events));
    assert_eq!(
        parse(&messages[0])["data"]["bookingStatus"]["lockExpiresAt"],
        crate::schema::rfc3339(START + 500_000).unwrap()
    );
}

#[test]
fn bad_documents_are_refused_with_codes_and_queries_answer_at_once() {
    let (_fakes, workflow) = setup();
    for (body, code) in [
        ("not json".to_string(), "BAD_REQUEST"),
        (json!({ "variables": {} }).to_string(), "BAD_REQUEST"),
        (
            json!({ "query": "subscription {" }).to_string(),
            "GRAPHQL_PARSE_FAILED",
        ),
        (
            json!({ "query": "subscription { seatMap { snapshot } }" }).to_string(),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            json!({ "query": "subscription { nothing }" }).to_string(),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (request(SEAT_MAP, "no such showtime!"), "INVALID_INPUT"),
        (request(SEAT_MAP, "showtime_nowhere"), "SHOWTIME_NOT_FOUND"),
    ] {
        let refused = block_on(start(workflow.clone(), &body, None)).unwrap_err();
        assert_eq!(codes(&refused), [code], "{body}");
    }
    let answered = block_on(start(
        workflow,
        &json!({ "query": "{ logicVersion }" }).to_string(),
        None,
    ))
    .expect("a query");
    assert_eq!(answered.topic, None);
    assert!(parse(&answered.initial[0])["data"]["logicVersion"].is_string());
}
