//! The Cinema service's gRPC contract (`proto/cinema.proto`), generated.

tonic::include_proto!("cinema.v1");
