#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod apidoc;
pub mod app;
pub mod clients;
pub mod connector_api;
pub mod directory;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod hub;
pub mod local_api;
pub mod metrics;
pub mod notices_api;
pub mod openapi;
pub mod ops_api;
pub mod peer_api;
pub mod pki;
pub mod protocol;
pub mod server;
pub mod settings;
pub mod tls;
pub mod webhooks;
