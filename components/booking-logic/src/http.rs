//! GraphQL over HTTP with no HTTP library: plain request and response
//! values that the component (wasi:http) and a native server both
//! translate from and to, so both serve exactly the same API.
//!
//! - `POST /graphql` with a JSON body `{query, variables, operationName}`.
//! - `GET /graphql?query=...&variables=...&operationName=...` for queries;
//!   mutations over GET are refused (405) so that links, prefetchers and
//!   caches can never book or pay.
//! - `GET /graphql` from a browser (Accept: text/html) without a query
//!   serves GraphiQL.
//!
//! Every answer is JSON (GraphiQL aside), and a bad request gets a 4xx
//! with an `errors` body carrying `extensions.code`, never a 5xx. GraphQL
//! documents that fail to parse or validate are answered with 200 and
//! `GRAPHQL_PARSE_FAILED` / `GRAPHQL_VALIDATION_FAILED`, as the GraphQL
//! over HTTP spec asks for `application/json` responses.

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Name, PathSegment, Request, Response, ServerError, Value};
use serde_json::json;

use crate::query_cost;
use crate::query_string;
use crate::schema::BookingSchema;

/// The only path served.
pub const GRAPHQL_PATH: &str = "/graphql";

/// Largest request body (and query string) accepted. Transports should
/// stop reading at this size and pass what they have: `handle` answers 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const JSON: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without the `?`.
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    fn json(status: u16, body: Vec<u8>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".to_string(), JSON.to_string())],
            body,
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
    HttpResponse::json(status, body.to_string().into_bytes())
}

/// Answers one HTTP request.
pub async fn handle(schema: &BookingSchema, request: HttpRequest) -> HttpResponse {
    if request.path != GRAPHQL_PATH {
        return error_response(
            404,
            "NOT_FOUND",
            &format!("nothing here; the GraphQL endpoint is {GRAPHQL_PATH}"),
        );
    }
    match request.method.as_str() {
        "POST" => post(schema, request).await,
        "GET" => get(schema, request).await,
        _ => error_response(405, "METHOD_NOT_ALLOWED", "use POST (or GET for queries)")
            .with_header("allow", "GET, POST"),
    }
}

async fn post(schema: &BookingSchema, request: HttpRequest) -> HttpResponse {
    if request.body.len() > MAX_BODY_BYTES {
        return error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            &format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        );
    }
    if let Some(content_type) = header(&request.headers, "content-type")
        && !is_json(content_type)
    {
        return error_response(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the GraphQL request as application/json",
        );
    }
    match graphql_request(&request.body) {
        Ok(graphql) => execute(schema, graphql, false).await,
        Err(message) => error_response(400, "BAD_REQUEST", &message),
    }
}

/// A JSON object with a `query` string (and optional `variables`,
/// `operationName`). Checked as JSON first because serde would also read
/// an array as a request and every field has a default.
fn graphql_request(body: &[u8]) -> Result<Request, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| format!("the body is not valid JSON: {error}"))?;
    match &value {
        serde_json::Value::Object(fields)
            if fields.get("query").is_some_and(|query| query.is_string()) => {}
        serde_json::Value::Array(_) => return Err("batched requests are not supported".to_string()),
        _ => return Err("the body must be a JSON object with a query string".to_string()),
    }
    serde_json::from_value(value)
        .map_err(|error| format!("the body is not a GraphQL request: {error}"))
}

async fn get(schema: &BookingSchema, request: HttpRequest) -> HttpResponse {
    let raw = request.query.as_deref().unwrap_or("");
    if raw.len() > MAX_BODY_BYTES {
        return error_response(
            414,
            "URI_TOO_LONG",
            &format!("query strings are limited to {MAX_BODY_BYTES} bytes; use POST"),
        );
    }
    let params = match query_string::parse(raw) {
        Ok(params) => params,
        Err(message) => return error_response(400, "BAD_REQUEST", &message),
    };
    let Some(query) = query_string::get(&params, "query") else {
        if header(&request.headers, "accept").is_some_and(|accept| accept.contains("text/html")) {
            return graphiql();
        }
        return error_response(400, "BAD_REQUEST", "missing the query parameter");
    };
    let mut graphql = Request::new(query);
    graphql.operation_name = query_string::get(&params, "operationName").map(str::to_string);
    if let Some(variables) = query_string::get(&params, "variables") {
        match serde_json::from_str(variables) {
            Ok(variables) => graphql.variables = variables,
            Err(error) => {
                return error_response(
                    400,
                    "BAD_REQUEST",
                    &format!("variables must be a JSON object: {error}"),
                );
            }
        }
    }
    execute(schema, graphql, true).await
}

/// Parses, guards and runs a GraphQL request; `read_only` refuses
/// mutations (GET).
async fn execute(schema: &BookingSchema, mut graphql: Request, read_only: bool) -> HttpResponse {
    let operation_name = graphql.operation_name.clone();
    let document = match graphql.parsed_query() {
        Ok(document) => document,
        Err(error) => return graphql_error(error, "GRAPHQL_PARSE_FAILED"),
    };
    if let Err(message) = query_cost::check(document) {
        return graphql_error(ServerError::new(message, None), "GRAPHQL_VALIDATION_FAILED");
    }
    let mutation = selects_mutation(document, operation_name.as_deref());
    if read_only && mutation {
        return error_response(
            405,
            "METHOD_NOT_ALLOWED",
            "mutations must be sent with POST",
        )
        .with_header("allow", "POST");
    }

    let mut response = schema.execute(graphql).await;
    for error in &mut response.errors {
        label(error);
    }
    if mutation {
        null_failed_root_fields(&mut response);
    }
    match serde_json::to_vec(&response) {
        Ok(body) => HttpResponse::json(200, body),
        Err(error) => error_response(
            500,
            "INTERNAL",
            &format!("could not encode the response: {error}"),
        ),
    }
}

/// Gives errors async-graphql produced itself a code like ours: without
/// a path they come from validation (unknown field, wrong argument type,
/// limits); with one, from a resolver that failed without a code.
fn label(error: &mut ServerError) {
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

fn graphql_error(mut error: ServerError, code: &str) -> HttpResponse {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    let body = json!({ "data": null, "errors": [error] });
    HttpResponse::json(200, body.to_string().into_bytes())
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

fn graphiql() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![(
            "content-type".to_string(),
            "text/html; charset=utf-8".to_string(),
        )],
        body: GraphiQLSource::build()
            .endpoint(GRAPHQL_PATH)
            .finish()
            .into_bytes(),
    }
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
