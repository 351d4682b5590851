//! What an operator sees: `/metrics` read back with a Prometheus text
//! parser while the seed workflow, a declined card, an idempotent replay,
//! traps and a hot swap run; the dashboard and alert rules name only
//! series the scrape returned.

use std::collections::BTreeSet;
use std::path::Path;

use e2e_tests::{Options, TestService, args, component};
use prometheus_parse::{Sample, Scrape, Value as Reading};
use serde_json::{Value, json};

/// `GET /metrics`, parsed, and the raw text.
async fn scrape(service: &TestService) -> (Scrape, String) {
    let response = service
        .client
        .get(&service.metrics_url)
        .send()
        .await
        .expect("the metrics endpoint answers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("a text body");
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let parsed = Scrape::parse(lines).expect("the Prometheus text format");
    (parsed, text)
}

/// The samples of `name` whose labels include every pair of `labels`.
fn matching<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, value)| sample.labels.get(key) == Some(*value))
        })
        .collect()
}

/// The sum of a counter's or gauge's matching samples (0 when none).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(scrape, name, labels)
        .iter()
        .map(|sample| match &sample.value {
            Reading::Counter(value) | Reading::Gauge(value) | Reading::Untyped(value) => *value,
            Reading::Histogram(_) | Reading::Summary(_) => 0.0,
        })
        .sum()
}

/// How many observations a histogram's matching series hold.
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    matching(scrape, name, labels)
        .iter()
        .map(|sample| match &sample.value {
            Reading::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
            _ => 0.0,
        })
        .sum()
}

/// Every series name a scrape can show: from the `# TYPE` lines (so a
/// family without series yet counts too), with the suffixes of its type.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = declaration.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for suffix in suffixes {
            names.insert(format!("{}{suffix}", name.trim_end_matches("_total")));
        }
    }
    names
}

/// The `booking_*` and `process_*` identifiers a file uses.
fn referenced_names(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let identifier = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    let mut start = 0;
    while start < bytes.len() {
        let end = (start..bytes.len())
            .find(|&at| !identifier(bytes[at]))
            .unwrap_or(bytes.len());
        let word = &text[start..end];
        let preceded = start > 0 && identifier(bytes[start - 1]);
        if !preceded && (word.starts_with("booking_") || word.starts_with("process_")) {
            names.insert(word.to_owned());
        }
        start = end + 1;
    }
    names
}

const CREATE: &str = "mutation($u: String!, $s: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: $s, seatNumbers: $n) { success booking { id } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_follow_the_workflow_traps_and_a_hot_swap() {
    let service = TestService::start(Options {
        extra_args: args(&["--request-cpu-ms", "300", "--request-memory-mb", "32"]),
        ..Options::default()
    })
    .await;
    let version: String = service.component_sha256.chars().take(12).collect();
    let (before, _) = scrape(&service).await;
    assert_eq!(
        value(&before, "booking_sandbox_instance_slots", &[]),
        64.0,
        "the pool's size"
    );
    assert_eq!(
        value(
            &before,
            "booking_logic_version",
            &[("role", "active"), ("version", &version)]
        ),
        1.0
    );
    assert!(value(&before, "process_resident_memory_bytes", &[]) > 0.0);

    // The seed workflow, a declined card, an idempotent replay.
    let paid = service
        .paid_booking("user_123", "showtime_456", &["A1"])
        .await;
    let declined = service
        .create_booking("user_456", "showtime_456", &["A2"])
        .await;
    service.pay_failing(&declined, "card_declined").await;
    service.booking(&paid).await;
    let variables = json!({"u": "user_789", "s": "showtime_456", "n": ["A3"]});
    for _ in 0..2 {
        let (status, body) = service
            .graphql_with(
                &[("idempotency-key", "metrics-replay-1")],
                CREATE,
                variables.clone(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["createBooking"]["success"], true, "{body}");
    }
    // A GraphQL error with a code of the logic's.
    let (_, refused) = service
        .graphql("query { getBooking { id } }", Value::Null)
        .await;
    let refused_code = refused["errors"][0]["extensions"]["code"]
        .as_str()
        .expect("a coded error")
        .to_owned();

    let (after, _) = scrape(&service).await;
    let ok_creates = [
        ("operation", "createBooking"),
        ("type", "mutation"),
        ("outcome", "ok"),
        ("version", version.as_str()),
    ];
    assert!(value(&after, "booking_http_requests_total", &ok_creates) >= 4.0);
    assert!(
        observations(&after, "booking_http_request_duration_seconds", &ok_creates) >= 4.0,
        "the latency histogram counted the creates"
    );
    assert!(
        value(
            &after,
            "booking_http_requests_total",
            &[("operation", "getBooking"), ("type", "query")]
        ) >= 2.0
    );
    assert!(
        value(
            &after,
            "booking_http_requests_total",
            &[("operation", "getBooking"), ("outcome", "error")]
        ) >= 1.0,
        "the refused read counts as an error"
    );
    assert!(
        value(
            &after,
            "booking_graphql_errors_total",
            &[("code", &refused_code)]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "booking_port_calls_total",
            &[("port", "payments"), ("call", "charge")]
        ) >= 2.0
    );
    assert!(
        value(
            &after,
            "booking_port_errors_total",
            &[
                ("port", "payments"),
                ("call", "charge"),
                ("kind", "rejected")
            ]
        ) >= 1.0,
        "the declined card is a rejected charge"
    );
    assert!(
        observations(
            &after,
            "booking_port_call_duration_seconds",
            &[("port", "seats"), ("call", "lock_seats")]
        ) >= 3.0,
        "three creates locked seats; the replay did not"
    );
    assert!(value(&after, "booking_idempotency_replays_total", &[]) >= 1.0);
    assert!(
        value(&after, "booking_sandbox_instantiations_total", &[])
            > value(&before, "booking_sandbox_instantiations_total", &[])
    );
    assert_eq!(
        value(&after, "booking_sandbox_instances_in_use", &[]),
        0.0,
        "every slot is back"
    );
    assert!(value(&after, "booking_sweeper_runs_total", &[("outcome", "ok")]) >= 1.0);
    assert_eq!(
        value(&after, "booking_sandbox_traps_total", &[]),
        0.0,
        "nothing trapped yet"
    );

    // A hot swap to a guest that traps and hoards memory, then back.
    let misbehaving = std::fs::read(component("misbehaving_guest")).expect("the misbehaving guest");
    let uploaded = service
        .admin(reqwest::Method::POST, "versions?activate=true")
        .header("content-type", "application/wasm")
        .body(misbehaving)
        .send()
        .await
        .expect("the admin API answers");
    assert_eq!(uploaded.status(), 201, "{}", uploaded.text().await.unwrap());
    for path in ["/trap", "/memory"] {
        let status = service.get(path).await.status();
        assert_eq!(status, 500, "{path} fails alone");
    }
    let swapped = scrape(&service).await.0;
    assert_eq!(value(&swapped, "booking_logic_swaps_total", &[]), 1.0);
    assert_eq!(
        value(
            &swapped,
            "booking_logic_version",
            &[("role", "previous"), ("version", &version)]
        ),
        1.0,
        "the first version is now the previous one"
    );
    assert_eq!(
        value(
            &swapped,
            "booking_sandbox_traps_total",
            &[("cause", "trap")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &swapped,
            "booking_sandbox_traps_total",
            &[("cause", "memory_limit")]
        ),
        1.0
    );
    assert!(
        value(
            &swapped,
            "booking_http_requests_total",
            &[("outcome", "server_error"), ("operation", "none")]
        ) >= 2.0
    );
    let rolled_back = service
        .admin(reqwest::Method::POST, "rollback")
        .send()
        .await
        .expect("the admin API answers");
    assert_eq!(rolled_back.status(), 200);
    let (last, text) = scrape(&service).await;
    assert_eq!(value(&last, "booking_logic_rollbacks_total", &[]), 1.0);
    assert_eq!(
        value(
            &last,
            "booking_logic_version",
            &[("role", "active"), ("version", &version)]
        ),
        1.0
    );
    for name in [
        "booking_outbox_backlog_events",
        "booking_outbox_oldest_unsent_age_seconds",
    ] {
        assert_eq!(matching(&last, name, &[]).len(), 1, "{name} is exported");
    }
    for sample in &last.samples {
        for label in ["booking_id", "user_id", "request_id"] {
            assert!(
                !sample.labels.contains_key(label),
                "an id as a label: {sample:?}"
            );
        }
    }

    // The dashboard and the alert rules use only names the scrape has.
    let exported = exported_names(&text);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "ops/grafana/booking-service.json",
        "ops/prometheus/alerts.yml",
    ] {
        let used = referenced_names(&root.join(file));
        assert!(
            used.len() >= 10,
            "{file} uses the service's metrics: {used:?}"
        );
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names series the service does not export: {unknown:?}"
        );
    }
    service.stop().await;
}

/// An OTLP/HTTP trace receiver on a free port: every span it was sent.
struct TraceReceiver {
    endpoint: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<ReceivedSpan>>>,
}

#[derive(Debug, Clone)]
struct ReceivedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl TraceReceiver {
    async fn start() -> TraceReceiver {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;

        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = spans.clone();
        let router = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut kept = kept.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            kept.push(ReceivedSpan {
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                                name: span.name,
                            });
                        }
                    }
                }
                axum::http::StatusCode::OK
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        TraceReceiver { endpoint, spans }
    }

    fn of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_trace_runs_from_the_client_through_the_imports_to_the_peers() {
    let receiver = TraceReceiver::start().await;
    let peers = e2e_tests::reference_peers(Default::default()).await;
    let data_dir = tempfile::tempdir().unwrap();
    let host = e2e_tests::process::HostProcess::start_with_env(
        env!("CARGO_BIN_EXE_e2e-host"),
        &peers,
        data_dir.path(),
        &["--auth-mode", "disabled"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "booking-e2e"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("LOG_FORMAT", "json"),
            // A quiet log must not quiet the traces.
            (
                "RUST_LOG",
                "warn,booking_host=info,booking_host::http=debug",
            ),
        ],
    )
    .await;
    let api = e2e_tests::Api::new(host.base_url.clone(), peers.users_url.clone());

    // The client's own span: the host's request span must be its child.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let variables = json!({"u": "user_123", "s": "showtime_456", "n": ["B3"]});
    let (status, body) = api
        .graphql_with(
            &[
                ("traceparent", &traceparent),
                ("x-request-id", "req-otel-1"),
            ],
            CREATE,
            variables,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let booking = body["data"]["createBooking"]["booking"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a booking: {body}"))
        .to_owned();
    let (status, paid) = api
        .graphql_with(
            &[("traceparent", &traceparent)],
            "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_token_xyz\") { success } }",
            json!({"b": booking}),
        )
        .await;
    assert_eq!(status, 200, "{paid}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let spans = loop {
        let spans = receiver.of_trace(trace_id);
        let imports = spans.iter().filter(|span| span.name.contains('.')).count();
        if spans
            .iter()
            .filter(|span| span.name == "POST /graphql")
            .count()
            == 2
            && imports >= 5
        {
            break spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no complete trace arrived: {spans:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let requests: Vec<_> = spans
        .iter()
        .filter(|span| span.name == "POST /graphql")
        .collect();
    for request in &requests {
        assert_eq!(
            request.parent_span_id, client_span,
            "the request continues the client's span"
        );
    }
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|span| span.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
    };
    for import in [
        "seats.lock_seats",
        "users.get_user",
        "storage.insert",
        "payments.charge",
        "storage.update_if_version",
    ] {
        let span = by_name(import);
        assert!(
            requests
                .iter()
                .any(|request| request.span_id == span.parent_span_id),
            "{import} is a child of a request span: {spans:#?}"
        );
    }
    for peer in ["cinema", "users", "payments"] {
        assert!(
            peers.traces.saw(peer, trace_id),
            "the {peer} peer got the trace"
        );
    }

    // JSON log lines carry the request's id and its trace id.
    let log = host.log();
    let answered = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["span"]["request_id"] == "req-otel-1")
        .unwrap_or_else(|| panic!("no JSON line of the request:\n{log}"));
    assert_eq!(answered["span"]["trace_id"], trace_id, "{answered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumed_event_carries_the_trace_of_the_request_that_stored_it() {
    let (Some(mongodb_url), Some(rabbitmq_url)) = (
        test_support::service_url("TEST_MONGODB_URL"),
        test_support::service_url("TEST_RABBITMQ_URL"),
    ) else {
        return;
    };
    let receiver = TraceReceiver::start().await;
    let peers = e2e_tests::reference_peers(Default::default()).await;
    let database = test_support::unique("e2e_traces");
    // The outbox of each store: SQLite's events table, MongoDB's booking
    // documents.
    for (store, store_args) in [
        ("sqlite", vec![]),
        (
            "mongodb",
            vec![
                "--mongodb-url",
                mongodb_url.as_str(),
                "--mongodb-database",
                database.as_str(),
            ],
        ),
    ] {
        let exchange = test_support::unique("e2e.traced.events");
        let mut subscriber =
            test_support::amqp::Subscriber::declare_and_bind(&rabbitmq_url, &exchange, "booking.#")
                .await;
        let data_dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--auth-mode",
            "disabled",
            "--rabbitmq-url",
            rabbitmq_url.as_str(),
            "--rabbitmq-exchange",
            exchange.as_str(),
        ];
        args.extend(store_args);
        let host = e2e_tests::process::HostProcess::start_with_env(
            env!("CARGO_BIN_EXE_e2e-host"),
            &peers,
            data_dir.path(),
            &args,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ],
        )
        .await;
        let api = e2e_tests::Api::new(host.base_url.clone(), peers.users_url.clone());
        let trace_id = if store == "sqlite" {
            "0af7651916cd43dd8448eb211c80319c"
        } else {
            "5b8efff798038103d269b633813fc60c"
        };
        let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
        let seat = if store == "sqlite" { "C5" } else { "C6" };
        let (status, body) = api
            .graphql_with(
                &[("traceparent", &traceparent)],
                CREATE,
                json!({"u": "user_123", "s": "showtime_456", "n": [seat]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["createBooking"]["success"], true, "{body}");
        let received = subscriber
            .next(std::time::Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{store}: the event arrives"));
        assert_eq!(received.routing_key, "booking.created");
        let carried = received
            .traceparent
            .unwrap_or_else(|| panic!("{store}: the message carries a traceparent"));
        assert_eq!(
            carried.split('-').nth(1),
            Some(trace_id),
            "{store}: the consumer continues the request's trace ({carried})"
        );
        // Its parent is a span the host exported: the store write's.
        let parent = carried.split('-').nth(2).unwrap_or_default().to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !receiver
            .of_trace(trace_id)
            .iter()
            .any(|span| span.span_id == parent && span.name == "storage.insert")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{store}: no storage.insert span {parent}: {:#?}",
                receiver.of_trace(trace_id)
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        drop(host);
    }
}
