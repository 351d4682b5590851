//! What every client asked and was told, in order: the invariants check
//! that what clients were told is true, and the final retries follow
//! from what they were told last.

use std::cell::RefCell;

use booking_logic::model::BookingStatus;

use super::api::{Failure, Paid};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create,
    Pay { card: String },
    Cancel,
    Sweep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Created,
    Paid(Paid),
    Cancelled(BookingStatus),
    Swept,
    Refused(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub booking_id: Option<String>,
    pub request: Request,
    pub reply: Reply,
}

impl Exchange {
    /// The client was told to try again.
    pub fn retryable(&self) -> bool {
        matches!(&self.reply, Reply::Refused(failure) if failure.retryable)
    }
}

#[derive(Default)]
pub struct Ledger(RefCell<Vec<Exchange>>);

impl Ledger {
    pub fn record(&self, booking_id: Option<&str>, request: Request, reply: Reply) {
        self.0.borrow_mut().push(Exchange {
            booking_id: booking_id.map(str::to_string),
            request,
            reply,
        });
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.0.borrow().clone()
    }

    /// Payments and cancellations whose last answer said "retry": a client
    /// that follows the API's contract sends them again.
    pub fn unsettled(&self) -> Vec<Exchange> {
        let exchanges = self.0.borrow();
        let mut last: Vec<&Exchange> = Vec::new();
        for exchange in exchanges.iter() {
            if !matches!(exchange.request, Request::Pay { .. } | Request::Cancel) {
                continue;
            }
            let same = |other: &&Exchange| {
                other.booking_id == exchange.booking_id
                    && std::mem::discriminant(&other.request)
                        == std::mem::discriminant(&exchange.request)
            };
            last.retain(|other| !same(other));
            last.push(exchange);
        }
        last.into_iter()
            .filter(|exchange| exchange.retryable())
            .cloned()
            .collect()
    }
}
