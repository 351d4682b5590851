//! The configured depth and complexity limits, applied per request.
//!
//! The schema is built once, before any request (in the component at
//! build time), so limits that come from the environment cannot be built
//! into it. async-graphql measures a document's depth and complexity
//! during validation whether or not the schema has limits; this extension
//! compares them with the request's settings and refuses a document over
//! either with async-graphql's own messages.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ServerError, ValidationResult};

use crate::workflow::Workflow;

pub(super) struct RequestLimits;

impl ExtensionFactory for RequestLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestLimits)
    }
}

#[async_trait::async_trait]
impl Extension for RequestLimits {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let measured = next.run(ctx).await?;
        // Every request carries its workflow (`http::execute`); one
        // without it has no limits to be held to, so it is refused.
        let Some(workflow) = ctx.data_opt::<Arc<Workflow>>() else {
            return Err(vec![ServerError::new("no settings for this request", None)]);
        };
        let settings = workflow.settings();
        if measured.complexity > settings.max_complexity as usize {
            return Err(vec![ServerError::new("Query is too complex.", None)]);
        }
        if measured.depth > settings.max_depth as usize {
            return Err(vec![ServerError::new("Query is nested too deep.", None)]);
        }
        Ok(measured)
    }
}
