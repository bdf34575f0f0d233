//! The OpenAPI 3.1 document of the node: the local API and the peer endpoint, built from the routers'
//! registrations (`local_api::routes`, `peer_api::routes`: every handler registered with its `#[utoipa::path]`
//! annotation through [`crate::apidoc::op`]) and finished by [`crate::apidoc::finish`] with the SDX JSON
//! Schema's definitions as components. `sdx openapi` prints it; the node serves the same document at
//! `GET /api/v1/openapi.json`; a snapshot test compares it with `docs/openapi.json`.
//!
//! A route of another module gets into the document by being registered the same way: an `OpenApiRouter` of
//! `op::<__path_handler, _, _, _>(handler)` entries whose `into_openapi()` is merged in [`api`] (and, to be
//! served, in the router that serves it).

use serde_json::Value;

/// The documentation of every route (before [`crate::apidoc::finish`]).
pub fn api() -> utoipa::openapi::OpenApi {
    crate::local_api::api()
}

/// The OpenAPI document (members sorted, so its text is stable).
pub fn document() -> Value {
    crate::apidoc::finish(api())
}
