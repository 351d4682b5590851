//! GraphQL over HTTP with no HTTP library: plain request and response
//! values that the component (wasi:http) and a native server both
//! translate from and to, so both serve exactly the same API. It follows
//! the GraphQL-over-HTTP spec:
//!
//! - `POST /graphql` with a JSON body `{query, variables, operationName}`
//!   (or a JSON array of them: a batch of at most `GRAPHQL_MAX_BATCH`).
//! - `GET /graphql?query=...&variables=...&operationName=...` for queries;
//!   mutations over GET are refused (405) so that links, prefetchers and
//!   caches can never book or pay.
//! - `GET /graphql` from a browser (Accept: text/html) without a query
//!   serves GraphiQL, unless introspection is switched off.
//! - The answer is `application/graphql-response+json` when the client
//!   names it in `Accept` (and rates it at least as high as
//!   `application/json`), else `application/json` — also for `*/*` and
//!   without `Accept`; 406 if it accepts neither. With `application/graphql-response+json`, a document that
//!   fails to parse or validate is a 400; with `application/json` it is a
//!   200, as the spec asks for legacy clients. Field errors are 200 in
//!   both.
//! - `Authorization: Bearer <token>` is checked once per request (see
//!   `access`); an invalid token is a 401 whatever the document asks for,
//!   a missing one only fails the fields that need a caller.
//!
//! Every error, from a body that is not JSON to a resolver's refusal,
//! carries `extensions.code`; a bad request gets a 4xx, never a 5xx.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{Name, PathSegment, Request, Response, ServerError, Value};
use booking_model::report::{
    IdempotencyOutcome, OperationType as ReportedType, REPORT_HEADER, RequestReport,
};
use serde_json::json;

use crate::access::{self, Principal};
use crate::error::BookingError;
use crate::query_cost;
use crate::query_string;
use crate::schema::{RequestContext, schema};
use crate::workflow::Workflow;

/// The only path served.
pub const GRAPHQL_PATH: &str = "/graphql";

/// Largest request body (and query string) accepted. Transports should
/// stop reading at this size and pass what they have: `handle` answers 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const JSON: &str = "application/json";
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// The media type of a GraphQL answer, chosen from `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => GRAPHQL_RESPONSE_JSON,
            Media::Json => JSON,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request from the parts any HTTP library hands out. Header values
    /// that are not visible ASCII are dropped: none that we read can be.
    pub fn new<'a>(
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        body: Vec<u8>,
    ) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers: headers
                .into_iter()
                .filter(|(_, value)| {
                    value
                        .iter()
                        .all(|b| *b == b'\t' || (b' '..=b'~').contains(b))
                })
                .filter_map(|(name, value)| {
                    Some((name.to_owned(), String::from_utf8(value.to_vec()).ok()?))
                })
                .collect(),
            body,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The code of a refusal made without running GraphQL, for the report.
    refusal_code: Option<String>,
}

impl HttpResponse {
    fn json(status: u16, body: Vec<u8>) -> HttpResponse {
        HttpResponse::typed(status, JSON, body)
    }

    fn typed(status: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".to_string(), content_type.to_string())],
            body,
            refusal_code: None,
        }
    }

    fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A refusal in the GraphQL error shape (`{"errors": [{message,
/// extensions: {code}}]}`), so clients parse one format for everything.
/// Transports use it too, e.g. when the body cannot be read.
pub fn error_response(status: u16, code: &str, message: &str) -> HttpResponse {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = HttpResponse::json(status, body.to_string().into_bytes());
    response.refusal_code = Some(code.to_string());
    response
}

/// A refusal as a GraphQL error with its code and whether to retry.
fn booking_error_response(status: u16, error: &BookingError) -> HttpResponse {
    error.log_hidden_detail();
    let body = json!({ "errors": [{
        "message": error.to_string(),
        "extensions": { "code": error.code(), "retryable": error.retryable() },
    }] });
    let mut response = HttpResponse::json(status, body.to_string().into_bytes());
    response.refusal_code = Some(error.code().to_string());
    response
}

/// Answers one HTTP request with `workflow` serving its resolvers; with
/// `host_report` set, the answer carries its `RequestReport` header.
pub async fn handle(workflow: Arc<Workflow>, request: HttpRequest) -> HttpResponse {
    let mut report = RequestReport::default();
    let mut response = answer(&workflow, request, &mut report).await;
    if workflow.settings().host_report {
        report.error_codes.extend(response.refusal_code.take());
        if report
            .error_codes
            .iter()
            .any(|code| BookingError::IDEMPOTENCY_CONFLICT_CODES.contains(&code.as_str()))
        {
            report.idempotency = Some(IdempotencyOutcome::Conflict);
        }
        response
            .headers
            .push((REPORT_HEADER.to_string(), report.to_header()));
    }
    response
}

async fn answer(
    workflow: &Arc<Workflow>,
    request: HttpRequest,
    report: &mut RequestReport,
) -> HttpResponse {
    if request.path != GRAPHQL_PATH {
        return error_response(
            404,
            "NOT_FOUND",
            &format!("nothing here; the GraphQL endpoint is {GRAPHQL_PATH}"),
        );
    }
    let read_only = match request.method.as_str() {
        "POST" => false,
        "GET" => true,
        _ => {
            return error_response(405, "METHOD_NOT_ALLOWED", "use POST (or GET for queries)")
                .with_header("allow", "GET, POST");
        }
    };
    let accept = header(&request.headers, "accept");
    if read_only
        && workflow.settings().introspection
        && accept.is_some_and(|accept| accept.contains("text/html"))
        && !has_query_parameter(&request)
    {
        return graphiql();
    }
    let Some(media) = negotiate(accept) else {
        return error_response(
            406,
            "NOT_ACCEPTABLE",
            &format!("this endpoint answers {GRAPHQL_RESPONSE_JSON} or {JSON}"),
        );
    };
    let operations = match if read_only {
        get_operations(&request)
    } else {
        post_operations(&request, workflow.settings().max_batch_operations)
    } {
        Ok(operations) => operations,
        Err(refusal) => return refusal,
    };
    let context = match request_context(workflow, &request.headers).await {
        Ok(context) => context,
        Err(refusal) => return refusal,
    };

    match operations {
        Operations::Single(graphql) => {
            let executed = execute(workflow, &context, *graphql, read_only, report).await;
            note_replays(&context, report);
            match executed {
                Executed::Ran(body) => HttpResponse::typed(200, media.content_type(), body),
                Executed::RequestError(body) => {
                    let status = match media {
                        Media::GraphqlResponse => 400,
                        Media::Json => 200,
                    };
                    HttpResponse::typed(status, media.content_type(), body)
                }
                Executed::Refused(response) => response,
            }
        }
        Operations::Batch(batch) => {
            let mut answers = Vec::with_capacity(batch.len());
            let mut batch_type = ReportedType::Query;
            for graphql in batch {
                let executed = execute(workflow, &context, graphql, read_only, report).await;
                if let Some((ReportedType::Mutation, _)) = report.operation {
                    batch_type = ReportedType::Mutation;
                }
                match executed {
                    Executed::Ran(body) | Executed::RequestError(body) => answers.push(body),
                    Executed::Refused(response) => return response,
                }
            }
            report.operation = Some((batch_type, "batch".to_string()));
            note_replays(&context, report);
            let mut body = b"[".to_vec();
            body.extend(answers.join(&b","[..]));
            body.push(b']');
            HttpResponse::typed(200, media.content_type(), body)
        }
    }
}

/// The media type to answer with: the one of ours that `Accept` rates
/// higher. On a tie `application/graphql-response+json` only when the
/// client named it, else `application/json` — also without `Accept` or
/// with `*/*`, as the spec asks (legacy clients know only JSON). `None` if
/// the client takes neither.
fn negotiate(accept: Option<&str>) -> Option<Media> {
    let Some(accept) = accept.filter(|accept| !accept.trim().is_empty()) else {
        return Some(Media::Json);
    };
    let graphql = quality(accept, GRAPHQL_RESPONSE_JSON);
    let json = quality(accept, JSON);
    if graphql.quality <= 0.0 && json.quality <= 0.0 {
        None
    } else if graphql.quality > json.quality || (graphql.quality == json.quality && graphql.named) {
        Some(Media::GraphqlResponse)
    } else {
        Some(Media::Json)
    }
}

/// How `Accept` rates one media type.
struct Rating {
    quality: f32,
    /// Whether the range that gave the quality names the type itself
    /// rather than a wildcard.
    named: bool,
}

/// The quality `Accept` gives `media_type`: the `q` of the most specific
/// range that matches it (RFC 9110 §12.5.1), so that
/// `application/graphql-response+json;q=0, */*` refuses that type; 0 if
/// no range matches. Names are case-insensitive (`Q=0` too); a `q` that
/// is no number from 0 to 1 counts as 0.
fn quality(accept: &str, media_type: &str) -> Rating {
    const NAMED: u8 = 3;
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let range_type = parts.next().unwrap_or("").trim();
        let specificity = if range_type.eq_ignore_ascii_case(media_type) {
            NAMED
        } else if range_type.eq_ignore_ascii_case("application/*") {
            2
        } else if range_type == "*/*" {
            1
        } else {
            continue;
        };
        let quality = parts
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
            best = Some((specificity, quality));
        }
    }
    Rating {
        quality: best.map_or(0.0, |(_, quality)| quality),
        named: best.is_some_and(|(specificity, _)| specificity == NAMED),
    }
}

fn has_query_parameter(request: &HttpRequest) -> bool {
    query_string::parse(request.query.as_deref().unwrap_or(""))
        .is_ok_and(|params| query_string::get(&params, "query").is_some())
}

enum Operations {
    Single(Box<Request>),
    Batch(Vec<Request>),
}

fn post_operations(request: &HttpRequest, max_batch: u32) -> Result<Operations, HttpResponse> {
    if request.body.len() > MAX_BODY_BYTES {
        return Err(error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            &format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        ));
    }
    if let Some(content_type) = header(&request.headers, "content-type")
        && !is_json(content_type)
    {
        return Err(error_response(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the GraphQL request as application/json",
        ));
    }
    let bad_request = |message: String| error_response(400, "BAD_REQUEST", &message);
    let value: serde_json::Value = serde_json::from_slice(&request.body)
        .map_err(|error| bad_request(format!("the body is not valid JSON: {error}")))?;
    match value {
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(bad_request("an empty batch has nothing to run".to_string()));
            }
            if items.len() > max_batch as usize {
                return Err(error_response(
                    400,
                    "BATCH_TOO_LARGE",
                    &format!("a batch may hold at most {max_batch} operations"),
                ));
            }
            items
                .into_iter()
                .map(graphql_request)
                .collect::<Result<Vec<_>, _>>()
                .map(Operations::Batch)
                .map_err(bad_request)
        }
        single => graphql_request(single)
            .map(|request| Operations::Single(Box::new(request)))
            .map_err(bad_request),
    }
}

/// A JSON object with a `query` string (and optional `variables`,
/// `operationName`). Checked by hand first because serde would accept
/// other shapes: every field of `Request` has a default.
pub(crate) fn graphql_request(value: serde_json::Value) -> Result<Request, String> {
    match &value {
        serde_json::Value::Object(fields)
            if fields.get("query").is_some_and(|query| query.is_string()) => {}
        _ => return Err("each request must be a JSON object with a query string".to_string()),
    }
    serde_json::from_value(value)
        .map_err(|error| format!("the body is not a GraphQL request: {error}"))
}

fn get_operations(request: &HttpRequest) -> Result<Operations, HttpResponse> {
    let raw = request.query.as_deref().unwrap_or("");
    if raw.len() > MAX_BODY_BYTES {
        return Err(error_response(
            414,
            "URI_TOO_LONG",
            &format!("query strings are limited to {MAX_BODY_BYTES} bytes; use POST"),
        ));
    }
    let bad_request = |message: &str| error_response(400, "BAD_REQUEST", message);
    let params = query_string::parse(raw).map_err(|message| bad_request(&message))?;
    let Some(query) = query_string::get(&params, "query") else {
        return Err(bad_request("missing the query parameter"));
    };
    let mut graphql = Request::new(query);
    graphql.operation_name = query_string::get(&params, "operationName").map(str::to_string);
    if let Some(variables) = query_string::get(&params, "variables") {
        graphql.variables = serde_json::from_str(variables)
            .map_err(|error| bad_request(&format!("variables must be a JSON object: {error}")))?;
    }
    Ok(Operations::Single(Box::new(graphql)))
}

/// Who is calling and with which idempotency key.
async fn request_context(
    workflow: &Workflow,
    headers: &[(String, String)],
) -> Result<RequestContext, HttpResponse> {
    let idempotency_key = header(headers, "idempotency-key").map(str::to_string);
    if !workflow.settings().auth_required {
        return Ok(RequestContext {
            principal: Principal::Unchecked,
            idempotency_key,
            idempotency_replays: Arc::default(),
        });
    }
    let Some(authorization) = header(headers, "authorization") else {
        return Ok(RequestContext {
            principal: Principal::Anonymous,
            idempotency_key,
            idempotency_replays: Arc::default(),
        });
    };
    let token = access::bearer_token(authorization).map_err(unauthenticated)?;
    match access::principal(workflow, Some(token)).await {
        Ok(principal) => Ok(RequestContext {
            principal,
            idempotency_key,
            idempotency_replays: Arc::default(),
        }),
        Err(error @ BookingError::Unauthenticated(_)) => Err(unauthenticated(error)),
        Err(error) => Err(booking_error_response(503, &error)),
    }
}

/// A 401 that tells the client how to authenticate (RFC 6750).
fn unauthenticated(error: BookingError) -> HttpResponse {
    booking_error_response(401, &error)
        .with_header("www-authenticate", "Bearer error=\"invalid_token\"")
}

enum Executed {
    /// Ran; the body may hold field errors.
    Ran(Vec<u8>),
    /// Refused before running: parse or validation errors, limits.
    RequestError(Vec<u8>),
    /// Not a GraphQL answer at all (a mutation over GET).
    Refused(HttpResponse),
}

/// Parses, guards and runs one GraphQL request; `read_only` refuses
/// mutations (GET).
async fn execute(
    workflow: &Arc<Workflow>,
    context: &RequestContext,
    mut graphql: Request,
    read_only: bool,
    report: &mut RequestReport,
) -> Executed {
    let operation_name = graphql.operation_name.clone();
    let document = match guard(&mut graphql, workflow.settings().introspection) {
        Ok(document) => document,
        Err(refused) => {
            let (error, code) = *refused;
            return Executed::RequestError(graphql_error(error, code, report));
        }
    };
    let mutation = selects_mutation(document, operation_name.as_deref());
    report.operation = Some((
        if mutation {
            ReportedType::Mutation
        } else {
            ReportedType::Query
        },
        root_field(document, operation_name.as_deref()),
    ));
    if read_only && mutation {
        return Executed::Refused(
            error_response(
                405,
                "METHOD_NOT_ALLOWED",
                "mutations must be sent with POST",
            )
            .with_header("allow", "POST"),
        );
    }

    let mut graphql = graphql.data(workflow.clone()).data(context.clone());
    if !workflow.settings().introspection {
        graphql = graphql.disable_introspection();
    }
    let mut response = schema().execute(graphql).await;
    for error in &mut response.errors {
        label(error);
        if let Some(Value::String(code)) = error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
        {
            report.error_codes.push(code.clone());
        }
    }
    // Errors without data or a path come from validation (including
    // variables that do not fit their types): nothing ran.
    let request_error = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty());
    if mutation {
        null_failed_root_fields(&mut response);
    }
    match serde_json::to_vec(&response) {
        Ok(body) if request_error => Executed::RequestError(body),
        Ok(body) => Executed::Ran(body),
        Err(error) => Executed::Refused(error_response(
            500,
            "INTERNAL",
            &format!("could not encode the response: {error}"),
        )),
    }
}

/// The checks every document passes before it runs, whatever carries
/// it: nesting, syntax, size with fragments inlined, and introspection
/// when it is off. Refused: the error and its code.
pub(crate) fn guard(
    graphql: &mut Request,
    introspection: bool,
) -> Result<&ExecutableDocument, Box<(ServerError, &'static str)>> {
    if let Err(message) = query_cost::check_nesting(&graphql.query) {
        return Err(Box::new((
            ServerError::new(message, None),
            "GRAPHQL_PARSE_FAILED",
        )));
    }
    let document = graphql
        .parsed_query()
        .map_err(|error| Box::new((error, "GRAPHQL_PARSE_FAILED")))?;
    if let Err(message) = query_cost::check(document) {
        return Err(Box::new((
            ServerError::new(message, None),
            "GRAPHQL_VALIDATION_FAILED",
        )));
    }
    if !introspection && asks_for_introspection(document) {
        return Err(Box::new((
            ServerError::new("introspection is switched off on this server", None),
            "GRAPHQL_VALIDATION_FAILED",
        )));
    }
    Ok(document)
}

/// Gives errors async-graphql produced itself a code like ours: without
/// a path they come from validation (unknown field, wrong argument type,
/// limits); with one, from a resolver that failed without a code.
pub(crate) fn label(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        let code = if error.path.is_empty() {
            "GRAPHQL_VALIDATION_FAILED"
        } else {
            "INTERNAL"
        };
        extensions.set("code", code);
    }
}

/// async-graphql leaves a failed field out of `data` (and makes `data`
/// null when no field succeeded). Every mutation field is nullable, so as
/// the GraphQL spec asks, a refused mutation shows as `null` next to its
/// error: put those nulls back.
fn null_failed_root_fields(response: &mut Response) {
    let Response { data, errors, .. } = response;
    for error in errors.iter() {
        let [PathSegment::Field(key)] = error.path.as_slice() else {
            continue;
        };
        if *data == Value::Null {
            *data = Value::Object(Default::default());
        }
        if let Value::Object(fields) = data {
            fields.entry(Name::new(key)).or_insert(Value::Null);
        }
    }
}

/// The body of a request error: no `data` entry, as the spec asks when
/// execution did not start.
fn graphql_error(mut error: ServerError, code: &str, report: &mut RequestReport) -> Vec<u8> {
    report.error_codes.push(code.to_string());
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    json!({ "errors": [error] }).to_string().into_bytes()
}

/// The root field of the operation that runs, the metrics' operation
/// label: bounded by the schema, unlike client-chosen operation names.
/// `multiple` for several root fields or fragments at the root.
fn root_field(document: &ExecutableDocument, operation_name: Option<&str>) -> String {
    let operation = match operation_name {
        Some(wanted) => document
            .operations
            .iter()
            .find(|(name, _)| name.is_some_and(|name| name.as_str() == wanted)),
        None => document.operations.iter().next(),
    };
    let items = operation.map_or(&[][..], |(_, operation)| {
        operation.node.selection_set.node.items.as_slice()
    });
    match items {
        [item] => match &item.node {
            Selection::Field(field) => field.node.name.node.to_string(),
            _ => "multiple".to_string(),
        },
        _ => "multiple".to_string(),
    }
}

/// Records idempotent replays the resolvers counted.
fn note_replays(context: &RequestContext, report: &mut RequestReport) {
    if context.idempotency_replays.load(Ordering::Relaxed) > 0 {
        report.idempotency = Some(IdempotencyOutcome::Replay);
    }
}

/// Whether the operation that would run is a mutation. With no name and
/// several operations, any mutation counts (execution would refuse the
/// ambiguity anyway).
fn selects_mutation(document: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    document.operations.iter().any(|(name, operation)| {
        operation.node.ty == OperationType::Mutation
            && match operation_name {
                Some(wanted) => name.is_some_and(|name| name.as_str() == wanted),
                None => true,
            }
    })
}

/// Whether a root selection (directly, or through fragments at the root)
/// is `__schema` or `__type`. async-graphql answers those with a silent
/// `null` when introspection is off; clients deserve an error instead.
/// `query_cost::check` ran first, so fragments do not spread themselves.
fn asks_for_introspection(document: &ExecutableDocument) -> bool {
    fn selects(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
        depth < query_cost::MAX_NESTING
            && set.items.iter().any(|item| match &item.node {
                Selection::Field(field) => {
                    matches!(field.node.name.node.as_str(), "__schema" | "__type")
                }
                Selection::InlineFragment(fragment) => {
                    selects(document, &fragment.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(spread) => document
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .is_some_and(|fragment| {
                        selects(document, &fragment.node.selection_set.node, depth + 1)
                    }),
            })
    }
    document
        .operations
        .iter()
        .any(|(_, operation)| selects(document, &operation.node.selection_set.node, 0))
}

/// A GraphiQL page that loads its scripts and styles from `/graphiql/`,
/// which the booking host serves from vendored copies (no CDN, works
/// offline). Runtimes without those files (Spin) show a short note instead.
const GRAPHIQL_PAGE: &str = include_str!("http/graphiql.html");

fn graphiql() -> HttpResponse {
    HttpResponse::typed(
        200,
        "text/html; charset=utf-8",
        GRAPHIQL_PAGE.as_bytes().to_vec(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// `application/json`, `application/graphql-response+json` and the like,
/// with or without parameters.
fn is_json(content_type: &str) -> bool {
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media_type == JSON || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

#[cfg(test)]
mod tests;
