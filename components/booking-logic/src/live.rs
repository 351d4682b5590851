//! GraphQL subscriptions without a transport, like `http`: the host
//! holds the connections (graphql-transport-ws, graphql-sse) and carries
//! committed events; this decides, for each call, who may watch what
//! ([`start`]) and what a batch of events looks like to a subscriber
//! ([`project`]). Both execute the document with a
//! `schema::subscription::Source`, so subscriptions are written as
//! resolvers of the one schema.
//!
//! A projection is the request itself (query, variables, operation):
//! equal requests get equal messages, so a host projects a batch once for
//! every subscriber that sent the same document — thousands watching one
//! seat map cost one call per batch. Access is decided at `start`, once
//! per subscriber; a host ends the subscription when its token expires.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, ServerError};
use futures::StreamExt;
use serde_json::json;

use crate::access::{self, Principal};
use crate::error::BookingError;
use crate::http::{graphql_request, guard, label};
use crate::model::Event;
use crate::schema::subscription::Source;
use crate::schema::{RequestContext, schema};
use crate::workflow::Workflow;

pub use crate::model::{Refusal, Subscription as Started};

/// Parses, checks and authorizes `request` (JSON) for the caller behind
/// `token`, and answers its first messages.
pub async fn start(
    workflow: Arc<Workflow>,
    request: &str,
    token: Option<&str>,
) -> Result<Started, Refusal> {
    let value: serde_json::Value = serde_json::from_str(request)
        .map_err(|error| refusal(&format!("the request is not JSON: {error}"), "BAD_REQUEST"))?;
    let mut graphql = graphql_request(value).map_err(|message| refusal(&message, "BAD_REQUEST"))?;
    let projection = json!({
        "query": graphql.query,
        "variables": graphql.variables,
        "operationName": graphql.operation_name,
    })
    .to_string();
    let subscribes = {
        let document =
            guard(&mut graphql, workflow.settings().introspection).map_err(|refused| {
                let (error, code) = *refused;
                errors(vec![coded(error, code)])
            })?;
        document
            .operations
            .iter()
            .any(|(_, operation)| operation.node.ty == OperationType::Subscription)
    };
    let principal = access::principal(&workflow, token)
        .await
        .map_err(|error| booking_refusal(&error))?;
    let (owner, expires_at) = match &principal {
        Principal::Caller(caller) => (Some(caller.user_id.clone()), Some(caller.expires_at)),
        Principal::Unchecked | Principal::Anonymous => (None, None),
    };
    let topic = Arc::new(Mutex::new(None));
    let graphql = with_context(graphql, &workflow, principal, Source::Start(topic.clone()));
    if !subscribes {
        // A query or mutation: one answer, and done.
        let mut response = schema().execute(graphql).await;
        response.errors.iter_mut().for_each(label);
        return Ok(Started {
            topic: None,
            projection,
            owner,
            expires_at,
            initial: vec![encode(&response)],
        });
    }
    let first = schema().execute_stream(graphql).next().await;
    let topic = topic.lock().unwrap_or_else(PoisonError::into_inner).take();
    match (first, topic) {
        (Some(response), Some(topic)) if response.errors.is_empty() => Ok(Started {
            topic: Some(topic),
            projection,
            owner,
            expires_at,
            initial: vec![encode(&response)],
        }),
        // Refused by validation or by the resolver (access, unknown ids).
        (Some(mut response), _) if !response.errors.is_empty() => {
            response.errors.iter_mut().for_each(label);
            Err(errors(response.errors))
        }
        _ => Err(refusal(
            "the subscription answered nothing to start from",
            "INTERNAL",
        )),
    }
}

/// The messages `events` (all of the projection's topic) make for the
/// subscribers of `projection`; none when nothing they show changed.
pub async fn project(workflow: Arc<Workflow>, projection: &str, events: Vec<Event>) -> Vec<String> {
    let graphql = match serde_json::from_str(projection)
        .map_err(|error| error.to_string())
        .and_then(graphql_request)
    {
        Ok(graphql) => graphql,
        Err(message) => {
            return vec![error_message(
                &format!("not a projection: {message}"),
                "INTERNAL",
            )];
        }
    };
    let graphql = with_context(
        graphql,
        &workflow,
        Principal::Unchecked,
        Source::Changes(events.into()),
    );
    schema()
        .execute_stream(graphql)
        .map(|mut response| {
            response.errors.iter_mut().for_each(label);
            encode(&response)
        })
        .collect()
        .await
}

fn with_context(
    graphql: Request,
    workflow: &Arc<Workflow>,
    principal: Principal,
    source: Source,
) -> Request {
    let mut graphql = graphql
        .data(workflow.clone())
        .data(RequestContext {
            principal,
            idempotency_key: None,
            idempotency_replays: Arc::default(),
        })
        .data(source);
    if !workflow.settings().introspection {
        graphql = graphql.disable_introspection();
    }
    graphql
}

/// A message of one error with `code`, for a projection that cannot
/// run at all.
pub fn error_message(message: &str, code: &str) -> String {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }).to_string()
}

fn encode(response: &Response) -> String {
    serde_json::to_string(response).unwrap_or_else(|error| {
        refusal(
            &format!("could not encode the response: {error}"),
            "INTERNAL",
        )
    })
}

fn coded(mut error: ServerError, code: &str) -> ServerError {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

fn errors(errors: Vec<ServerError>) -> Refusal {
    serde_json::to_string(&errors).unwrap_or_else(|_| "[]".to_string())
}

/// A refusal of one error with `code`, for a transport or the component
/// glue that cannot start the logic at all.
pub fn refusal(message: &str, code: &str) -> Refusal {
    errors(vec![coded(ServerError::new(message, None), code)])
}

fn booking_refusal(error: &BookingError) -> Refusal {
    refusal(&error.to_string(), error.code())
}

#[cfg(test)]
mod tests;
