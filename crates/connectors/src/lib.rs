//! SDX connectors: real ticket systems exchanging tickets through an SDX node.
//!
//! A connector sits between one ticket system and one SDX node and talks to both over their HTTP APIs: the
//! system's REST API ([`system::TicketSystem`], one implementation per system in [`systems`]) and the node's
//! local API and change feed. It translates values with a declarative mapping and keeps the link ticket ↔ case
//! and its cursors in the node's store.

pub mod config;
pub mod mapping;
pub mod node;
pub mod push;
pub mod scripts;
pub mod secret;
pub mod sync;
pub mod system;
pub mod systems;
