//! The booking service's GraphQL API as a client sees it.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
}

/// A booking as stored, for the flash sale's audit.
pub struct StoredBooking {
    pub status: String,
    pub seats: Vec<String>,
}

impl Api {
    pub fn new(url: &str) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            url: url.to_owned(),
        })
    }

    /// The GraphQL endpoint, `http://<host>:<port>/graphql`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `data`, or an error carrying the first GraphQL error's code.
    async fn call(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if let Some(error) = body["errors"].get(0) {
            let code = error["extensions"]["code"].as_str().unwrap_or("UNKNOWN");
            bail!("{code}: {}", error["message"]);
        }
        if !status.is_success() {
            bail!("HTTP {status}: {body}");
        }
        Ok(body["data"].clone())
    }

    /// A query that must answer without errors; its data is dropped.
    pub async fn read_with(&self, query: &str, variables: Value) -> anyhow::Result<()> {
        self.call(query, variables).await.map(drop)
    }

    pub async fn logic_version(&self) -> anyhow::Result<String> {
        let data = self.call("{ logicVersion }", json!({})).await?;
        data["logicVersion"]
            .as_str()
            .map(str::to_owned)
            .context("no logicVersion")
    }

    /// A PENDING booking's id.
    pub async fn create_booking(
        &self,
        user: &str,
        showtime: &str,
        seats: &[String],
    ) -> anyhow::Result<String> {
        let data = self
            .call(
                "mutation($u: String!, $s: String!, $n: [String!]!) { createBooking(userId: $u, showtimeId: $s, seatNumbers: $n) { success code booking { id } } }",
                json!({"u": user, "s": showtime, "n": seats}),
            )
            .await?;
        let created = &data["createBooking"];
        match created["booking"]["id"].as_str() {
            Some(id) if created["success"] == true => Ok(id.to_owned()),
            _ => bail!("{}: booking not created", created["code"]),
        }
    }

    pub async fn process_payment(&self, booking: &str) -> anyhow::Result<()> {
        let data = self
            .call(
                "mutation($b: String!) { processPayment(bookingId: $b, paymentMethod: \"credit_card\", paymentDetails: \"card_token_bench\") { success code } }",
                json!({"b": booking}),
            )
            .await?;
        if data["processPayment"]["success"] != true {
            bail!("{}: payment failed", data["processPayment"]["code"]);
        }
        Ok(())
    }

    pub async fn cancel_booking(&self, booking: &str) -> anyhow::Result<()> {
        let data = self
            .call(
                "mutation($b: String!) { cancelBooking(bookingId: $b) { success } }",
                json!({"b": booking}),
            )
            .await?;
        if data["cancelBooking"]["success"] != true {
            bail!("cancellation refused");
        }
        Ok(())
    }

    pub async fn get_booking(&self, booking: &str) -> anyhow::Result<StoredBooking> {
        let data = self
            .call(
                "query($b: String!) { getBooking(bookingId: $b) { status seats } }",
                json!({"b": booking}),
            )
            .await?;
        let booking = &data["getBooking"];
        Ok(StoredBooking {
            status: booking["status"].as_str().context("no booking")?.to_owned(),
            seats: booking["seats"]
                .as_array()
                .context("no seats")?
                .iter()
                .filter_map(|seat| seat.as_str().map(str::to_owned))
                .collect(),
        })
    }

    /// Every seat of the showtime with its status (AVAILABLE, LOCKED, BOOKED).
    pub async fn seat_statuses(&self, showtime: &str) -> anyhow::Result<Vec<(String, String)>> {
        let data = self
            .call(
                "query($s: String!) { showtimeSeats(showtimeId: $s) { seats { number status } } }",
                json!({"s": showtime}),
            )
            .await?;
        Ok(data["showtimeSeats"]["seats"]
            .as_array()
            .context("no seats")?
            .iter()
            .filter_map(|seat| {
                Some((
                    seat["number"].as_str()?.to_owned(),
                    seat["status"].as_str()?.to_owned(),
                ))
            })
            .collect())
    }
}
