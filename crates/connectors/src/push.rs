//! Push: a ticket system that can say "a ticket changed" (OTOBO's GenericInterface invoker, an RT scrip; see
//! `scripts/ticketsystems/`) posts to the connector's `POST /push`, and the connector syncs that ticket at once
//! instead of at its next poll. The body only names the ticket (`{"TicketID": 7}` from OTOBO, `{"ticket": 7}`
//! from RT; a body naming none starts a whole round): the connector reads the ticket itself, so a lost, repeated
//! or forged push changes nothing but the timing, and polling stays the safety net.
//!
//! The listener wants the shared token as `Authorization: Bearer TOKEN` or as the password of basic auth (the
//! user name is ignored; OTOBO's requester only speaks basic auth). Answers: 204 done, 401 without the token,
//! 404 for any other path, 413 above 64 KiB.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::secret::Secret;
use crate::sync::Wake;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use base64::Engine as _;
use serde::Deserialize;

/// The largest push body taken (OTOBO sends the event's ticket data along).
const MAX_BODY: usize = 64 * 1024;
/// The shortest token taken.
pub const MIN_TOKEN: usize = 16;

/// `[push]` of a connector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Where to listen, e.g. `127.0.0.1:8591` (the address the system's push is configured with).
    pub listen: SocketAddr,
    /// The shared token (at least 16 characters).
    pub token: Secret,
}

/// A bound push listener, not yet serving.
pub struct PushListener {
    listener: tokio::net::TcpListener,
    token: Secret,
}

impl PushSettings {
    /// Bind the listener now (so a taken port is an error at start, not later). Needs a Tokio runtime.
    pub fn bind(&self) -> std::io::Result<PushListener> {
        let std = std::net::TcpListener::bind(self.listen)?;
        std.set_nonblocking(true)?;
        Ok(PushListener { listener: tokio::net::TcpListener::from_std(std)?, token: self.token.clone() })
    }
}

impl PushListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve pushes until the task is dropped, telling `wake` of each accepted one.
    pub async fn serve(self, wake: Arc<Wake>) -> std::io::Result<()> {
        let app = axum::Router::new()
            .route("/push", post(push))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::new(Pushed { token: self.token, wake }));
        axum::serve(self.listener, app).await
    }
}

struct Pushed {
    token: Secret,
    wake: Arc<Wake>,
}

async fn push(State(p): State<Arc<Pushed>>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(token_of);
    let ok = given.is_some_and(|g| {
        aws_lc_rs::constant_time::verify_slices_are_equal(g.as_bytes(), p.token.expose().as_bytes()).is_ok()
    });
    if !ok {
        tracing::warn!("push without the right token refused");
        return StatusCode::UNAUTHORIZED;
    }
    p.wake.push(ticket_in(&body));
    StatusCode::NO_CONTENT
}

/// The ticket a push body names: `TicketID` (OTOBO) or `ticket` (RT), a number or a short id.
fn ticket_in(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = v.get("TicketID").or_else(|| v.get("ticket"))?;
    let id = match id {
        serde_json::Value::Number(n) => n.as_u64()?.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => return None,
    };
    let ok = !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(id)
}

/// The token of an `Authorization` value: a bearer token, or the password of basic auth.
fn token_of(v: &str) -> Option<String> {
    let (scheme, rest) = v.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        return text.split_once(':').map(|(_, pw)| pw.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_bearer_or_the_basic_password() {
        assert_eq!(token_of("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token_of("basic b3RvYm86c2VjcmV0").as_deref(), Some("secret"));
        assert_eq!(token_of("Basic !!!"), None);
        assert_eq!(token_of("Digest x"), None);
        assert_eq!(token_of("Bearer"), None);
    }

    #[test]
    fn a_push_names_its_ticket_or_none() {
        assert_eq!(ticket_in(br#"{"Event":"ArticleCreate","TicketID":273}"#).as_deref(), Some("273"));
        assert_eq!(ticket_in(br#"{"ticket":150}"#).as_deref(), Some("150"));
        assert_eq!(ticket_in(br#"{"ticket":"../etc"}"#), None);
        assert_eq!(ticket_in(br#"{"ticket":-1}"#), None);
        assert_eq!(ticket_in(b"not json"), None);
        assert_eq!(ticket_in(b""), None);
    }
}
