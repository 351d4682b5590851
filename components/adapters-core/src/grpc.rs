//! gRPC status codes and what a failed Cinema call means to the logic:
//! the one map from a gRPC status to a port error, used by the host's
//! tonic client (`host/adapters/src/seats.rs`) and the Spin adapter's
//! gRPC-Web client ([`crate::grpc_web`]).

use booking_model::PortError;

/// gRPC status codes (grpc/doc/statuscodes.md); names as tonic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code of a number; an unknown number is `Unknown`, as in gRPC.
    pub fn from_i32(code: i32) -> Code {
        usize::try_from(code)
            .ok()
            .and_then(|at| Code::ALL.get(at))
            .copied()
            .unwrap_or(Code::Unknown)
    }
}

/// A call that did not end with status `Ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The port error of a failed Cinema call. Clients (tonic) report
    /// their own per-call timeout as `Cancelled` or `DeadlineExceeded`,
    /// and a failed connect as `Unavailable`.
    pub fn into_error(self) -> PortError {
        let message = format!("cinema {:?}: {}", self.code, self.message);
        match self.code {
            Code::NotFound => PortError::NotFound(message),
            Code::InvalidArgument => PortError::Rejected(message),
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                PortError::Conflict(message)
            }
            Code::DeadlineExceeded | Code::Cancelled => PortError::Timeout(message),
            Code::Ok
            | Code::Unknown
            | Code::PermissionDenied
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
            | Code::Unauthenticated => PortError::Unavailable(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_their_numbers() {
        for (number, code) in Code::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, number);
            assert_eq!(Code::from_i32(number as i32), code);
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn statuses_map_to_port_errors() {
        let e = |code| Status::new(code, "m").into_error();
        assert_eq!(
            e(Code::NotFound),
            PortError::NotFound("cinema NotFound: m".into())
        );
        assert!(matches!(e(Code::InvalidArgument), PortError::Rejected(_)));
        for code in [Code::FailedPrecondition, Code::AlreadyExists, Code::Aborted] {
            assert!(matches!(e(code), PortError::Conflict(_)));
        }
        for code in [Code::DeadlineExceeded, Code::Cancelled] {
            assert!(matches!(e(code), PortError::Timeout(_)));
        }
        for code in [
            Code::Unavailable,
            Code::Internal,
            Code::Unknown,
            Code::Unimplemented,
            Code::Unauthenticated,
        ] {
            assert!(matches!(e(code), PortError::Unavailable(_)));
        }
    }
}
