//! gRPC-Web (binary, `application/grpc-web+proto`) over HTTP/1.1: what the
//! `seats` adapter sends to a `tonic-web`-enabled Cinema server and how it
//! reads the answer.
//!
//! A message travels in a frame: one flag byte (`0x00` data, `0x80`
//! trailers; bit `0x01` = compressed, which we never ask for), a 4-byte
//! big-endian length, the bytes. The answer's status comes in a trailer
//! frame at the end of the body (`grpc-status:0\r\ngrpc-message:…\r\n`), or,
//! for a trailers-only answer, in the HTTP headers. What a status means
//! to the logic is [`crate::grpc`]'s, as for the host's tonic client.

pub use crate::grpc::{Code, Status};

pub const CONTENT_TYPE: &str = "application/grpc-web+proto";

/// Headers of every call (besides the content type).
pub const REQUEST_HEADERS: [(&str, &str); 3] = [
    ("content-type", CONTENT_TYPE),
    ("accept", CONTENT_TYPE),
    ("x-grpc-web", "1"),
];

/// The path of a method: `/cinema.v1.CinemaService/GetShowtime`.
pub fn method_path(service: &str, method: &str) -> String {
    format!("/{service}/{method}")
}

/// One uncompressed data frame holding `message`.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0x00);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// The message of a unary answer, or the status it failed with.
///
/// `headers` are the HTTP response headers (names in any case); `body` the
/// whole response body.
pub fn unframe_response(
    http_status: u16,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Result<Vec<u8>, Status> {
    if http_status != 200 {
        return Err(Status::new(
            http_status_code(http_status),
            format!("HTTP {http_status} from the gRPC-Web endpoint"),
        ));
    }
    let content_type = header(headers, "content-type").unwrap_or_default();
    if !content_type.starts_with("application/grpc-web") || content_type.contains("-text") {
        return Err(Status::new(
            Code::Unknown,
            format!("unexpected content-type {content_type:?}"),
        ));
    }
    let mut message: Option<Vec<u8>> = None;
    let mut trailers: Option<Vec<(String, String)>> = None;
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(Status::new(
                Code::Internal,
                "truncated gRPC-Web frame header",
            ));
        }
        let flags = rest[0];
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = rest
            .get(5..5 + length)
            .ok_or_else(|| Status::new(Code::Internal, "truncated gRPC-Web frame"))?;
        rest = &rest[5 + length..];
        if flags & 0x01 != 0 {
            return Err(Status::new(
                Code::Internal,
                "compressed frame, none was accepted",
            ));
        }
        if flags & 0x80 != 0 {
            trailers = Some(parse_trailers(payload));
            break;
        } else if message.replace(payload.to_vec()).is_some() {
            return Err(Status::new(
                Code::Internal,
                "more than one message in a unary answer",
            ));
        }
    }
    // Trailers-only answers carry the status in the headers.
    let fields: Vec<(String, String)> = match trailers {
        Some(fields) => fields,
        None => headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let code = match field("grpc-status") {
        Some(code) => Code::from_i32(code.trim().parse().unwrap_or(Code::Unknown as i32)),
        None => return Err(Status::new(Code::Internal, "the answer has no grpc-status")),
    };
    if code != Code::Ok {
        let message = percent_decode(field("grpc-message").unwrap_or_default());
        return Err(Status::new(code, message));
    }
    message.ok_or_else(|| Status::new(Code::Internal, "grpc-status 0 without a message"))
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// `name: value\r\n` lines, names lower-cased.
fn parse_trailers(block: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(block)
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect()
}

/// gRPC over HTTP: the code implied by a non-200 HTTP status
/// (grpc/doc/http-grpc-status-mapping.md).
pub fn http_status_code(status: u16) -> Code {
    match status {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// `grpc-message` is percent-encoded UTF-8.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(byte) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use booking_model::PortError;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn trailer_frame(text: &str) -> Vec<u8> {
        let mut framed = frame(text.as_bytes());
        framed[0] = 0x80;
        framed
    }

    #[test]
    fn a_request_is_one_data_frame_with_a_big_endian_length() {
        assert_eq!(frame(b"abc"), vec![0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(frame(b""), vec![0, 0, 0, 0, 0]);
        let big = vec![7u8; 300];
        assert_eq!(&frame(&big)[..5], &[0, 0, 0, 1, 44]);
    }

    #[test]
    fn an_ok_answer_yields_its_message() {
        let mut body = frame(b"hello");
        body.extend(trailer_frame("grpc-status:0\r\ngrpc-message:\r\n"));
        let h = headers(&[("Content-Type", "application/grpc-web+proto")]);
        assert_eq!(unframe_response(200, &h, &body).unwrap(), b"hello");
        // An empty message (e.g. ConfirmSeatsResponse) is a zero-length frame.
        let mut body = frame(b"");
        body.extend(trailer_frame("grpc-status: 0\r\n"));
        assert_eq!(unframe_response(200, &h, &body).unwrap(), b"");
    }

    #[test]
    fn errors_come_from_trailers_or_trailers_only_headers() {
        let h = headers(&[("content-type", "application/grpc-web+proto")]);
        let body = trailer_frame("grpc-status:9\r\ngrpc-message:seat%20A1%20is%20locked\r\n");
        let status = unframe_response(200, &h, &body).unwrap_err();
        assert_eq!(status.code, Code::FailedPrecondition);
        assert_eq!(status.message, "seat A1 is locked");
        assert!(
            matches!(status.into_error(), PortError::Conflict(m) if m.contains("seat A1 is locked"))
        );

        let h = headers(&[
            ("content-type", "application/grpc-web+proto"),
            ("grpc-status", "5"),
            ("grpc-message", "no showtime x"),
        ]);
        let status = unframe_response(200, &h, b"").unwrap_err();
        assert_eq!(status.code, Code::NotFound);
        assert!(matches!(status.into_error(), PortError::NotFound(_)));
    }

    #[test]
    fn broken_answers_are_errors_not_panics() {
        let h = headers(&[("content-type", "application/grpc-web+proto")]);
        assert_eq!(
            unframe_response(200, &h, &[0, 0, 0]).unwrap_err().code,
            Code::Internal
        );
        assert_eq!(
            unframe_response(200, &h, &[0, 0, 0, 0, 9, 1])
                .unwrap_err()
                .code,
            Code::Internal
        );
        assert_eq!(
            unframe_response(200, &h, &frame(b"x")).unwrap_err().code,
            Code::Internal,
            "no status"
        );
        let mut compressed = frame(b"x");
        compressed[0] = 1;
        assert_eq!(
            unframe_response(200, &h, &compressed).unwrap_err().code,
            Code::Internal
        );
        let text = headers(&[("content-type", "application/grpc-web-text")]);
        assert_eq!(
            unframe_response(200, &text, b"").unwrap_err().code,
            Code::Unknown
        );
        let html = headers(&[("content-type", "text/html")]);
        assert_eq!(
            unframe_response(200, &html, b"").unwrap_err().code,
            Code::Unknown
        );
    }

    #[test]
    fn http_failures_map_like_grpc_does() {
        assert_eq!(
            unframe_response(503, &[], b"").unwrap_err().code,
            Code::Unavailable
        );
        assert_eq!(
            unframe_response(404, &[], b"").unwrap_err().code,
            Code::Unimplemented
        );
        assert!(matches!(
            unframe_response(502, &[], b"").unwrap_err().into_error(),
            PortError::Unavailable(_)
        ));
    }
}
