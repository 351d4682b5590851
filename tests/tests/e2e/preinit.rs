//! The shipped component is pre-initialized (`booking-host preinit`): its
//! schema was built at build time. What comes from the environment still
//! applies per request, and what must differ between instances does.

use std::collections::HashSet;

use e2e_tests::{Options, TestService, error_code};
use serde_json::Value;

const DEEP: &str = r#"{ showtimeSeats(showtimeId: "showtime_456") { showtime { id } } }"#;

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environments_limits_apply_to_the_schema_built_at_build_time() {
    let wide = format!(
        "{{ {} }}",
        (0..100)
            .map(|n| format!("v{n}: logicVersion"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let defaults = TestService::start(Options::default()).await;
    for document in [DEEP, wide.as_str()] {
        let (status, body) = defaults.graphql(document, Value::Null).await;
        assert_eq!((status, &body["errors"]), (200, &Value::Null), "{body}");
    }
    defaults.stop().await;

    for logic in ["wasm", "native"] {
        let strict = TestService::start(Options::with_args(&[
            "--logic",
            logic,
            "--graphql-max-depth",
            "2",
            "--graphql-max-complexity",
            "60",
            "--graphql-introspection",
            "false",
        ]))
        .await;
        let (_, body) = strict.graphql(DEEP, Value::Null).await;
        assert_eq!(
            message(&body),
            "Query is nested too deep.",
            "{logic}: {body}"
        );
        let (_, body) = strict.graphql(&wide, Value::Null).await;
        assert_eq!(message(&body), "Query is too complex.", "{logic}: {body}");
        let (_, body) = strict
            .graphql("{ __type(name: \"Booking\") { name } }", Value::Null)
            .await;
        assert_eq!(
            error_code(&body),
            Some("GRAPHQL_VALIDATION_FAILED"),
            "{logic}: {body}"
        );
        let (_, body) = strict.graphql("{ logicVersion }", Value::Null).await;
        assert!(body["data"]["logicVersion"].is_string(), "{logic}: {body}");
        strict.stop().await;
    }
}

/// async-graphql reports unused fragments in the order of a `HashSet`, so
/// the order of those errors shows the hash keys the request ran with. A
/// snapshot that froze std's keys would give every instance the same
/// order; renewed keys give each request its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_hashes_with_keys_of_its_own() {
    let service = TestService::start(Options::default()).await;
    let fragments: String = (0..8)
        .map(|n| format!(" fragment F{n} on Query {{ logicVersion }}"))
        .collect();
    let document = format!("{{ logicVersion }}{fragments}");
    let mut orders = HashSet::new();
    for _ in 0..12 {
        let (_, body) = service.graphql(&document, Value::Null).await;
        let errors = body["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 8, "{body}");
        let order: Vec<String> = errors
            .iter()
            .map(|error| error["message"].as_str().unwrap_or_default().to_owned())
            .collect();
        orders.insert(order);
    }
    // Twelve requests with the same keys give one order; with fresh keys
    // all twelve agreeing is vanishingly unlikely.
    assert!(orders.len() > 1, "one order for every request: {orders:?}");
    service.stop().await;
}
