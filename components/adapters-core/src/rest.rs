//! The User and Payment services' REST APIs: endpoints, bodies, and the
//! one status → error and transport failure → error map both the host's
//! adapters (`host/adapters/src/{rest,users,payments}.rs`, on reqwest) and
//! the Spin adapter (on `wasi:http`) apply. The transport is the caller's.

use booking_model::{Caller, PortError, Receipt, RefundReceipt, User};
use serde::{Deserialize, Serialize};

/// A service base URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// The base path without a trailing slash ("" for the root).
    pub base_path: String,
}

impl ServiceUrl {
    /// `http://host:port[/base]`; anything else is refused.
    pub fn parse(url: &str) -> Result<ServiceUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("service URL {url:?} has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "service URL {url:?}: only http and https are supported"
            ));
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("service URL {url:?} needs a plain host[:port]"));
        }
        if path.contains(['?', '#']) {
            return Err(format!(
                "service URL {url:?} cannot have a query or fragment"
            ));
        }
        Ok(ServiceUrl {
            scheme,
            authority: authority.to_owned(),
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The path of the base with `segments` appended, each percent-encoded.
    pub fn path(&self, segments: &[&str]) -> String {
        let mut path = self.base_path.clone();
        for segment in segments {
            path.push('/');
            path.push_str(&encode_segment(segment));
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an
/// id can never add a path segment, a query or a fragment.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// How a request failed before an HTTP answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// Nothing reached the service: DNS, refused, denied, connect timeout.
    NotSent,
    /// Sent, but no (complete) answer in time.
    TimedOut,
    /// Sent, then the connection broke or the answer was unreadable.
    Broken,
}

/// A failed request that changes nothing (a read, an authentication, a
/// Cinema call) of `service`: only a timeout after sending may be an
/// answer on the way.
pub fn transport_error(service: &str, failure: TransportFailure, detail: &str) -> PortError {
    let message = format!("{service}: {detail}");
    match failure {
        TransportFailure::TimedOut => PortError::Timeout(message),
        TransportFailure::NotSent | TransportFailure::Broken => PortError::Unavailable(message),
    }
}

/// Users: see [`transport_error`].
pub fn users_transport_error(failure: TransportFailure, detail: &str) -> PortError {
    transport_error("users", failure, detail)
}

/// Payments: only a failed connect proves the request never arrived.
pub fn payments_transport_error(failure: TransportFailure, detail: &str) -> PortError {
    let message = format!("payments: {detail}");
    match failure {
        TransportFailure::NotSent => PortError::Unavailable(message),
        TransportFailure::TimedOut | TransportFailure::Broken => PortError::Timeout(message),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

/// `"{service}: HTTP 404 Not Found: {error}: {message}"`: the status and
/// the service's `{"error","message"}` if it sent one, for people.
pub fn describe(service: &str, status: u16, body: &[u8]) -> String {
    let status = http_status(status);
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => format!("{service}: HTTP {status}: {}: {}", e.error, e.message),
        Err(_) => format!("{service}: HTTP {status}"),
    }
}

/// `404 Not Found`, as `http::StatusCode` displays it.
fn http_status(status: u16) -> String {
    http::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

/// A 3xx is never followed (a request carries a bearer token or card
/// details, which must reach no other host) and is not the service's
/// answer: as good as a lost one.
fn redirected(service: &str, status: u16) -> Option<String> {
    (300..400).contains(&status).then(|| {
        format!(
            "{service}: HTTP {}: redirects are not followed",
            http_status(status)
        )
    })
}

/// `GET /users/{id}` failed with `status`.
pub fn users_status_error(status: u16, body: &[u8]) -> PortError {
    if let Some(message) = redirected("users", status) {
        return PortError::Unavailable(message);
    }
    let message = describe("users", status, body);
    match status {
        404 => PortError::NotFound(message),
        500..=599 => PortError::Unavailable(message),
        _ => PortError::Rejected(message),
    }
}

/// `GET /auth/me` failed with `status`: an unknown, malformed or expired
/// token (401, 403) is `rejected`, like any refusal; no such endpoint
/// (404) means the service cannot authenticate at all, which is not the
/// client's fault, so it is `unavailable` like a server error.
pub fn auth_status_error(status: u16, body: &[u8]) -> PortError {
    if let Some(message) = redirected("users", status) {
        return PortError::Unavailable(message);
    }
    let message = describe("users", status, body);
    match status {
        401 | 403 => PortError::Rejected(message),
        404 | 500..=599 => PortError::Unavailable(message),
        _ => PortError::Rejected(message),
    }
}

/// `POST /payments[/{id}/refund|/void]` failed with `status`. Where the
/// service may have acted (a 3xx, 408, 500, 502, 504) it is `timeout`:
/// the logic retries with the same idempotency key, which cannot charge
/// twice.
pub fn payments_status_error(status: u16, body: &[u8]) -> PortError {
    if let Some(message) = redirected("payments", status) {
        return PortError::Timeout(message);
    }
    let message = describe("payments", status, body);
    match status {
        404 => PortError::NotFound(message),
        409 => PortError::Conflict(message),
        // The service may have acted before failing.
        408 | 500 | 502 | 504 => PortError::Timeout(message),
        429 => PortError::Unavailable(message),
        500..=599 => PortError::Unavailable(message),
        // 402 declined, 400 invalid, and any other refusal.
        _ => PortError::Rejected(message),
    }
}

/// Ids that would address a collection or another resource.
pub fn is_unaddressable(id: &str) -> bool {
    matches!(id, "" | "." | "..")
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct UserBody {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
}

pub fn parse_user(body: &[u8]) -> Result<UserBody, PortError> {
    serde_json::from_slice(body)
        .map_err(|e| PortError::Unavailable(format!("users: malformed user: {e}")))
}

impl From<UserBody> for User {
    fn from(user: UserBody) -> User {
        User {
            id: user.id,
            name: user.name,
            email: user.email,
            active: user.active,
        }
    }
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallerBody {
    pub user_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub expires_at: u64,
}

pub fn parse_caller(body: &[u8]) -> Result<CallerBody, PortError> {
    serde_json::from_slice(body)
        .map_err(|e| PortError::Unavailable(format!("users: malformed caller: {e}")))
}

impl From<CallerBody> for Caller {
    fn from(caller: CallerBody) -> Caller {
        Caller {
            user_id: caller.user_id,
            roles: caller.roles,
            expires_at: caller.expires_at,
        }
    }
}

/// The `Authorization` header for a token. Bearer tokens are visible
/// ASCII; anything else could smuggle another header in, and is nobody's
/// token.
pub fn bearer(token: &str) -> Result<String, PortError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(PortError::Rejected("users: malformed bearer token".into()));
    }
    Ok(format!("Bearer {token}"))
}

#[derive(Debug, Serialize)]
pub struct ChargeBody<'a> {
    pub idempotency_key: &'a str,
    pub amount_cents: u64,
    pub currency: &'a str,
    pub method: &'a str,
    pub details: &'a str,
    pub description: &'a str,
}

impl<'a> ChargeBody<'a> {
    pub fn of(request: &'a booking_model::ChargeRequest) -> ChargeBody<'a> {
        ChargeBody {
            idempotency_key: &request.idempotency_key,
            amount_cents: request.amount_cents,
            currency: &request.currency,
            method: &request.method,
            details: &request.details,
            description: &request.description,
        }
    }
}

/// The charge request body, as the host's reqwest `.json(&body)` sends it.
pub fn charge_json(body: &ChargeBody<'_>) -> Result<Vec<u8>, PortError> {
    serde_json::to_vec(body).map_err(|e| PortError::Rejected(format!("payments: {e}")))
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct ReceiptBody {
    pub transaction_id: String,
    pub amount_cents: u64,
    pub currency: String,
    pub created_at_ms: u64,
}

impl From<ReceiptBody> for Receipt {
    fn from(receipt: ReceiptBody) -> Receipt {
        Receipt {
            transaction_id: receipt.transaction_id,
            amount_cents: receipt.amount_cents,
            currency: receipt.currency,
            charged_at: receipt.created_at_ms,
        }
    }
}

/// The service charged; an unreadable receipt is a `timeout` so the logic
/// retries with the same key and learns how.
pub fn parse_receipt(body: &[u8]) -> Result<ReceiptBody, PortError> {
    serde_json::from_slice(body)
        .map_err(|e| PortError::Timeout(format!("payments: unreadable charge receipt: {e}")))
}

/// `POST /payments/void`'s body: closes an idempotency key, and the
/// answer names its charge, which a real Payment service must offer for
/// crashed attempts to be resolved.
pub fn void_charge_json(idempotency_key: &str) -> Result<Vec<u8>, PortError> {
    serde_json::to_vec(&serde_json::json!({ "idempotency_key": idempotency_key }))
        .map_err(|e| PortError::Rejected(format!("payments: {e}")))
}

#[derive(Debug, Deserialize)]
struct VoidBody {
    /// Required: a body without it is not a void answer.
    voided: bool,
    charge: Option<ReceiptBody>,
}

/// The void's answer: 2xx with `{"charge": receipt | null}`. Anything else
/// is an error, an unreadable body included, so a void never wrongly
/// says "nothing was charged".
pub fn voided_charge(status: u16, body: &[u8]) -> Result<Option<ReceiptBody>, PortError> {
    match status {
        200..=299 => match serde_json::from_slice::<VoidBody>(body) {
            Ok(VoidBody {
                voided: true,
                charge,
            }) => Ok(charge),
            Ok(_) => Err(PortError::Unavailable(format!(
                "{}: the key was not voided",
                describe("payments", status, body)
            ))),
            Err(e) => Err(PortError::Unavailable(format!(
                "payments: unreadable void answer: {e}"
            ))),
        },
        _ => Err(payments_status_error(status, body)),
    }
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct RefundBody {
    pub refund_id: String,
    pub transaction_id: String,
    pub amount_cents: u64,
}

pub fn parse_refund(body: &[u8]) -> Result<RefundBody, PortError> {
    serde_json::from_slice(body)
        .map_err(|e| PortError::Unavailable(format!("payments: malformed refund: {e}")))
}

impl From<RefundBody> for RefundReceipt {
    fn from(refund: RefundBody) -> RefundReceipt {
        RefundReceipt {
            refund_id: refund.refund_id,
            transaction_id: refund.transaction_id,
            amount_cents: refund.amount_cents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_segments_cannot_escape() {
        let url = ServiceUrl::parse("http://127.0.0.1:8001").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.authority.as_str()),
            ("http", "127.0.0.1:8001")
        );
        assert_eq!(url.path(&["users", "user_123"]), "/users/user_123");
        assert_eq!(
            url.path(&["users", "a/b?c#d e"]),
            "/users/a%2Fb%3Fc%23d%20e"
        );
        assert_eq!(url.path(&[]), "/");
        let based = ServiceUrl::parse("HTTPS://svc.example/api/v1/").unwrap();
        assert_eq!(based.scheme, "https");
        assert_eq!(
            based.path(&["payments", "tx", "refund"]),
            "/api/v1/payments/tx/refund"
        );
        for bad in [
            "127.0.0.1:8001",
            "ftp://x",
            "http://",
            "http://u:p@h/",
            "http://h/?q=1",
        ] {
            assert!(ServiceUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(is_unaddressable("..") && !is_unaddressable("u1"));
    }

    #[test]
    fn users_statuses_map_as_in_the_host() {
        let body = br#"{"error":"USER_NOT_FOUND","message":"no user x"}"#;
        assert_eq!(
            users_status_error(404, body),
            PortError::NotFound("users: HTTP 404 Not Found: USER_NOT_FOUND: no user x".into())
        );
        assert!(
            matches!(users_status_error(503, b""), PortError::Unavailable(m) if m == "users: HTTP 503 Service Unavailable")
        );
        assert!(matches!(
            users_status_error(400, b""),
            PortError::Rejected(_)
        ));
        assert_eq!(
            users_status_error(302, b"<html>"),
            PortError::Unavailable("users: HTTP 302 Found: redirects are not followed".into())
        );
        assert_eq!(
            describe("users", 418, b""),
            "users: HTTP 418 I'm a teapot",
            "as reqwest's StatusCode says it"
        );
        assert!(matches!(
            users_transport_error(TransportFailure::TimedOut, "x"),
            PortError::Timeout(_)
        ));
        assert!(matches!(
            users_transport_error(TransportFailure::NotSent, "x"),
            PortError::Unavailable(_)
        ));
        assert!(matches!(
            users_transport_error(TransportFailure::Broken, "x"),
            PortError::Unavailable(_)
        ));
    }

    #[test]
    fn auth_refusals_are_rejected() {
        assert!(matches!(
            auth_status_error(401, b""),
            PortError::Rejected(_)
        ));
        assert!(matches!(
            auth_status_error(403, b""),
            PortError::Rejected(_)
        ));
        assert!(matches!(
            auth_status_error(502, b""),
            PortError::Unavailable(_)
        ));
        assert!(matches!(
            auth_status_error(400, b""),
            PortError::Rejected(_)
        ));
        // No such endpoint: the service cannot authenticate anyone.
        assert!(matches!(
            auth_status_error(404, b""),
            PortError::Unavailable(_)
        ));
        assert!(matches!(
            auth_status_error(307, b""),
            PortError::Unavailable(_)
        ));
        let caller =
            parse_caller(br#"{"userId":"user_123","roles":["support"],"expiresAt":1700000000000}"#)
                .unwrap();
        assert_eq!(caller.user_id, "user_123");
        assert_eq!(caller.roles, ["support"]);
        assert_eq!(caller.expires_at, 1_700_000_000_000);
        assert!(matches!(
            parse_caller(b"{}"),
            Err(PortError::Unavailable(_))
        ));
        assert_eq!(bearer("abc").unwrap(), "Bearer abc");
        for bad in ["a\r\nX-Evil: 1", "", "a b", "tök"] {
            assert!(bearer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payments_statuses_map_as_in_the_host() {
        assert!(matches!(
            payments_status_error(402, b""),
            PortError::Rejected(_)
        ));
        assert!(matches!(
            payments_status_error(400, b""),
            PortError::Rejected(_)
        ));
        assert!(matches!(
            payments_status_error(404, b""),
            PortError::NotFound(_)
        ));
        assert!(matches!(
            payments_status_error(409, b""),
            PortError::Conflict(_)
        ));
        for status in [301, 303, 308, 408, 500, 502, 504] {
            assert!(
                matches!(payments_status_error(status, b""), PortError::Timeout(_)),
                "{status}"
            );
        }
        for status in [429, 503, 507] {
            assert!(
                matches!(
                    payments_status_error(status, b""),
                    PortError::Unavailable(_)
                ),
                "{status}"
            );
        }
        assert!(matches!(
            payments_transport_error(TransportFailure::NotSent, "x"),
            PortError::Unavailable(_)
        ));
        assert!(matches!(
            payments_transport_error(TransportFailure::TimedOut, "x"),
            PortError::Timeout(_)
        ));
        assert!(matches!(
            payments_transport_error(TransportFailure::Broken, "x"),
            PortError::Timeout(_)
        ));
        assert!(matches!(
            parse_receipt(b"not json"),
            Err(PortError::Timeout(_))
        ));
        assert!(matches!(
            parse_refund(b"not json"),
            Err(PortError::Unavailable(_))
        ));
    }

    #[test]
    fn the_void_names_its_key_and_tells_none_from_failure() {
        let url = ServiceUrl::parse("http://127.0.0.1:8002/api").unwrap();
        assert_eq!(url.path(&["payments", "void"]), "/api/payments/void");
        assert_eq!(
            void_charge_json("b 1").unwrap(),
            br#"{"idempotency_key":"b 1"}"#
        );
        let voided = br#"{"idempotency_key":"b","voided":true,"charge":{"transaction_id":"tx","status":"succeeded","amount_cents":3000,"currency":"USD","created_at_ms":5}}"#;
        assert_eq!(
            voided_charge(200, voided).unwrap(),
            Some(ReceiptBody {
                transaction_id: "tx".into(),
                amount_cents: 3000,
                currency: "USD".into(),
                created_at_ms: 5,
            })
        );
        assert_eq!(
            voided_charge(
                200,
                br#"{"idempotency_key":"b","voided":true,"charge":null}"#
            )
            .unwrap(),
            None
        );
        // A body that is not a void answer, or a failure, is never "none".
        assert!(matches!(
            voided_charge(200, b"[]"),
            Err(PortError::Unavailable(_))
        ));
        assert!(matches!(
            voided_charge(200, br#"{"idempotency_key":"b"}"#),
            Err(PortError::Unavailable(_))
        ));
        assert!(voided_charge(404, b"").is_err());
        assert!(voided_charge(503, b"").is_err());
    }

    #[test]
    fn bodies_have_the_host_shapes() {
        let charge = ChargeBody {
            idempotency_key: "b1",
            amount_cents: 3000,
            currency: "USD",
            method: "credit_card",
            details: "card_token_xyz",
            description: "Booking b1",
        };
        assert_eq!(
            serde_json::to_string(&charge).unwrap(),
            r#"{"idempotency_key":"b1","amount_cents":3000,"currency":"USD","method":"credit_card","details":"card_token_xyz","description":"Booking b1"}"#
        );
        let receipt = parse_receipt(br#"{"transaction_id":"tx","amount_cents":3000,"currency":"USD","created_at_ms":5,"status":"succeeded"}"#).unwrap();
        assert_eq!(receipt.created_at_ms, 5);
        let user = parse_user(br#"{"id":"u","name":"N","email":"e","active":true}"#).unwrap();
        assert!(user.active);
    }
}
