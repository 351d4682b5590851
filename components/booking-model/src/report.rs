//! What the logic tells its host about a request it answered, for the
//! host's metrics: the operation that ran, the error codes answered and
//! what idempotency did. The logic adds it as one response header when
//! its settings ask (`HOST_REPORT`, which our host sets); the host reads
//! and removes it, so clients never see it. Its form is written here
//! once, for both ends.

/// The response header that carries the report.
pub const REPORT_HEADER: &str = "x-booking-report";

/// Longest name kept (an operation's root field, an error code). The
/// host takes only names of this shape, so a label stays bounded even if
/// a logic version reported nonsense.
const MAX_NAME: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationType {
    Query,
    Mutation,
}

impl OperationType {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyOutcome {
    /// The stored answer of an earlier request with the key was replayed.
    Replay,
    /// The key was refused: reused with other arguments, or in use.
    Conflict,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestReport {
    /// The operation's type and its root field (`createBooking`), or
    /// `multiple` for several root fields, `batch` for a batch.
    pub operation: Option<(OperationType, String)>,
    /// `extensions.code` of every error answered, in order.
    pub error_codes: Vec<String>,
    pub idempotency: Option<IdempotencyOutcome>,
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

impl RequestReport {
    /// `type=mutation;operation=createBooking;errors=A,B;idempotency=replay`.
    pub fn to_header(&self) -> String {
        let mut parts = Vec::with_capacity(4);
        if let Some((kind, field)) = &self.operation {
            parts.push(format!("type={}", kind.as_str()));
            parts.push(format!("operation={field}"));
        }
        if !self.error_codes.is_empty() {
            parts.push(format!("errors={}", self.error_codes.join(",")));
        }
        match self.idempotency {
            Some(IdempotencyOutcome::Replay) => parts.push("idempotency=replay".into()),
            Some(IdempotencyOutcome::Conflict) => parts.push("idempotency=conflict".into()),
            None => {}
        }
        parts.join(";")
    }

    /// Reads [`RequestReport::to_header`]'s form; names of another shape
    /// and unknown parts are left out.
    pub fn from_header(header: &str) -> RequestReport {
        let mut report = RequestReport::default();
        let mut kind = None;
        let mut field = None;
        for part in header.split(';') {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            match (key.trim(), value.trim()) {
                ("type", "query") => kind = Some(OperationType::Query),
                ("type", "mutation") => kind = Some(OperationType::Mutation),
                ("operation", name) if is_name(name) => field = Some(name.to_string()),
                ("errors", codes) => {
                    report.error_codes = codes
                        .split(',')
                        .filter(|code| is_name(code))
                        .map(str::to_string)
                        .collect();
                }
                ("idempotency", "replay") => report.idempotency = Some(IdempotencyOutcome::Replay),
                ("idempotency", "conflict") => {
                    report.idempotency = Some(IdempotencyOutcome::Conflict);
                }
                _ => {}
            }
        }
        report.operation = kind.zip(field);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_written() {
        let report = RequestReport {
            operation: Some((OperationType::Mutation, "createBooking".into())),
            error_codes: vec!["PAYMENT_DECLINED".into(), "INTERNAL".into()],
            idempotency: Some(IdempotencyOutcome::Replay),
        };
        assert_eq!(
            report.to_header(),
            "type=mutation;operation=createBooking;errors=PAYMENT_DECLINED,INTERNAL;idempotency=replay"
        );
        assert_eq!(RequestReport::from_header(&report.to_header()), report);
        assert_eq!(RequestReport::from_header(""), RequestReport::default());
    }

    #[test]
    fn names_of_another_shape_are_left_out() {
        let long = "x".repeat(MAX_NAME + 1);
        let report = RequestReport::from_header(&format!(
            "type=query;operation=a b;errors=OK,{long},BAD-CODE,FINE;idempotency=maybe;junk"
        ));
        assert_eq!(report.operation, None, "no valid root field, no operation");
        assert_eq!(report.error_codes, ["OK", "FINE"]);
        assert_eq!(report.idempotency, None);
    }
}
