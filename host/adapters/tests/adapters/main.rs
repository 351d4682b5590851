//! The adapters' integration tests, one binary: the network adapters
//! against the reference peers, the SQLite and MongoDB storage held to one
//! contract, the MongoDB particulars, and RabbitMQ delivery, against the
//! real test servers of scripts/test-services.sh (skipped without them
//! outside CI).

mod mongo_storage;
mod network_adapters;
mod rabbitmq_events;
mod storage_contract;
mod support;
