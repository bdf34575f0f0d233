//! One module per group of subcommands.

pub mod bench;
pub mod connector;
pub mod demo;
pub mod demo_systems;
pub mod demo_topology;
pub mod directory;
pub mod document;
pub mod init;
pub mod jose;
pub mod pair;
pub mod pki;
pub mod schema;
pub mod serve;
