//! One module per group of subcommands.

pub mod demo;
pub mod document;
pub mod jose;
pub mod schema;
pub mod serve;
