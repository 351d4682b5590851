//! Authentication, ownership, idempotency keys and the GraphQL-over-HTTP
//! rules, end to end: tokens from the reference User service's
//! `/auth/login`, checked through the `users` import, over real sockets
//! into the component.

use std::sync::Arc;

use e2e_tests::{Options, TestService};
use serde_json::{Value, json};

const CREATE: &str = "mutation($u: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: \"showtime_456\", seatNumbers: $n) { success booking { id userId status } } }";
const PAY: &str = "mutation($b: String!, $d: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: $d) { success code booking { status paymentTransactionId } } }";
const READ: &str = "query($b: String!, $u: String!) { getBooking(bookingId: $b) { id } getUserBookings(userId: $u) { id } }";

async fn secured() -> TestService {
    TestService::start(Options {
        auth_required: true,
        ..Options::default()
    })
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["code"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_may_book_pay_and_read() {
    let service = secured().await;
    let alice = service.login("user_123").await;
    let bob = service.login("user_456").await;
    let support = service.login("support_1").await;

    // No token: public fields answer, mutations do not.
    let (status, body) = service.graphql("{ logicVersion }", Value::Null).await;
    assert_eq!((status, body.get("errors")), (200, None), "{body}");
    let variables = json!({"u": "user_123", "n": ["A1"]});
    let (status, body) = service.graphql(CREATE, variables.clone()).await;
    assert_eq!(
        (status, codes(&body)),
        (200, vec!["UNAUTHENTICATED".to_owned()])
    );

    // A made-up token is refused for the whole request, with a challenge.
    let response = service
        .graphql_request("{ logicVersion }")
        .header("authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), ["UNAUTHENTICATED"]);

    // Bob may not book for Alice; Alice may.
    let (_, body) = service.graphql_as(&bob, CREATE, variables.clone()).await;
    assert_eq!(codes(&body), ["FORBIDDEN"]);
    let (_, body) = service.graphql_as(&alice, CREATE, variables).await;
    let booking_id = body["data"]["createBooking"]["booking"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();

    // Bob can neither pay for it nor read it; support reads but cannot pay.
    let pay = json!({"b": booking_id, "d": "card_token_xyz"});
    let read = json!({"b": booking_id, "u": "user_123"});
    for token in [&bob, &support] {
        let (_, body) = service.graphql_as(token, PAY, pay.clone()).await;
        assert_eq!(codes(&body), ["FORBIDDEN"]);
        assert!(
            !body.to_string().contains("user_123"),
            "names the owner: {body}"
        );
    }
    let (_, body) = service.graphql_as(&bob, READ, read.clone()).await;
    assert_eq!(codes(&body), ["FORBIDDEN", "FORBIDDEN"], "{body}");
    assert!(service.peers.payments.charges().is_empty());
    let (_, body) = service.graphql_as(&support, READ, read).await;
    assert_eq!(
        body["data"]["getBooking"]["id"],
        booking_id.as_str(),
        "{body}"
    );

    let (_, body) = service.graphql_as(&alice, PAY, pay).await;
    assert_eq!(body["data"]["processPayment"]["success"], true, "{body}");

    // A logged-out token stops working (once the host's cache forgets it:
    // the test host caches for the default 30 s, so use a fresh token).
    let carol = service.login("user_789").await;
    let logout = service
        .client
        .post(format!("{}/auth/logout", service.peers.users_url))
        .header("authorization", bearer(&carol))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success());
    let (status, _) = service
        .graphql_as(&carol, "{ logicVersion }", Value::Null)
        .await;
    assert_eq!(status, 401);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_book_and_charge_once() {
    let service = Arc::new(secured().await);
    let token = service.login("user_123").await;

    // Ten clients send the same createBooking with the same key at once,
    // as a client retrying after timeouts would.
    let attempts = (0..10).map(|_| {
        let service = service.clone();
        let token = token.clone();
        tokio::spawn(async move {
            service
                .graphql_with(
                    &[
                        ("authorization", &bearer(&token)),
                        ("idempotency-key", "order-42"),
                    ],
                    CREATE,
                    json!({"u": "user_123", "n": ["C1", "C2"]}),
                )
                .await
        })
    });
    let mut booked = Vec::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        assert_eq!(status, 200, "{body}");
        match codes(&body).as_slice() {
            [] => booked.push(body["data"]["createBooking"]["booking"]["id"].clone()),
            [code] => assert_eq!(code, "IDEMPOTENCY_KEY_IN_USE", "{body}"),
            other => panic!("unexpected errors {other:?}"),
        }
    }
    assert!(!booked.is_empty());
    assert!(
        booked.iter().all(|id| *id == booked[0]),
        "one booking: {booked:?}"
    );
    let (_, body) = service
        .graphql_as(
            &token,
            "{ getUserBookings(userId: \"user_123\") { id } }",
            Value::Null,
        )
        .await;
    assert_eq!(body["data"]["getUserBookings"].as_array().unwrap().len(), 1);

    // The same for the payment, with the key as an argument this time.
    let booking_id = booked[0].as_str().unwrap().to_owned();
    let pay = "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_token_xyz\", idempotencyKey: \"pay-42\") { success booking { paymentTransactionId } } }";
    let attempts = (0..5).map(|_| {
        let service = service.clone();
        let token = token.clone();
        let booking_id = booking_id.clone();
        tokio::spawn(async move {
            service
                .graphql_as(&token, pay, json!({"b": booking_id}))
                .await
        })
    });
    for attempt in attempts {
        let (_, body) = attempt.await.unwrap();
        let errors = codes(&body);
        assert!(
            errors.is_empty() || errors == ["IDEMPOTENCY_KEY_IN_USE"],
            "{body}"
        );
    }
    assert_eq!(service.peers.payments.charges().len(), 1, "charged once");

    // Reusing the key for other seats is refused.
    let (_, body) = service
        .graphql_with(
            &[
                ("authorization", &bearer(&token)),
                ("idempotency-key", "order-42"),
            ],
            CREATE,
            json!({"u": "user_123", "n": ["C3"]}),
        )
        .await;
    assert_eq!(codes(&body), ["IDEMPOTENCY_KEY_REUSED"]);
    Arc::into_inner(service).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_http_media_types_and_statuses() {
    let service = secured().await;
    let post = |accept: Option<&'static str>, query: &'static str| {
        let mut request = service.graphql_request(query);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        request.send()
    };
    // reqwest sends `Accept: */*` unless told otherwise: legacy JSON.
    let cases = [
        (None, "{ logicVersion", 200, "application/json"),
        (None, "{ logicVersion }", 200, "application/json"),
        (
            Some("application/graphql-response+json"),
            "{ logicVersion",
            400,
            "application/graphql-response+json",
        ),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            "{ logicVersion }",
            200,
            "application/graphql-response+json",
        ),
        (
            Some("application/json"),
            "{ logicVersion",
            200,
            "application/json",
        ),
        (
            Some("text/csv"),
            "{ logicVersion }",
            406,
            "application/json",
        ),
    ];
    for (accept, query, status, media) in cases {
        let response = post(accept, query).await.unwrap();
        assert_eq!(response.status(), status, "{accept:?} {query}");
        assert_eq!(
            response.headers()["content-type"],
            media,
            "{accept:?} {query}"
        );
        let body: Value = response.json().await.unwrap();
        if status != 200 || body.get("errors").is_some() {
            assert!(!codes(&body).is_empty(), "a code: {body}");
        }
    }
    // A literal nested 100,000 deep would overflow a recursive parser's
    // stack inside the sandbox; it is refused before parsing.
    let deep = format!(
        "{{ getBooking(bookingId: {}1{}) {{ id }} }}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let response = service
        .graphql_request(&deep)
        .header("accept", "application/graphql-response+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(codes(&body), ["GRAPHQL_PARSE_FAILED"]);
    let (status, _) = service.graphql("{ logicVersion }", Value::Null).await;
    assert_eq!(status, 200, "the host serves after the deep document");
    service.stop().await;
}
