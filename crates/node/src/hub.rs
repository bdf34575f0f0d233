//! Hub mode (`[node] role = "hub"`, issue 9; `docs/routing.md`, *Hub*): the same binary, serving a peer endpoint
//! that relays members' enveloped messages (`crate::envelope`) by their route and reads none of them.
//!
//! For every `POST /sdx/v1/messages` the hub checks, on the envelope alone: it is an envelope; its route's author is
//! the member the mutual-TLS certificate names; the author's signature over route and ciphertext is valid (the key
//! from the directory or the hub's `[[peers]]`); the reader is a member the hub can reach, not the author itself
//! (a loop), not the hub, and not behind another hub (no chains). Then it posts the envelope, unchanged, to the
//! reader and answers with the reader's answer — the reader's signed receipt, which only the author can check
//! against what it sent, or the reader's problem — so the author's outbox keeps the message until the end-to-end
//! receipt is there (the hub stores no message; a hub restarted or down loses nothing, the authors retry). The
//! reader not reachable: 503, retryable. Per member, relays are counted in `sdx_delivery_attempts_total{peer,
//! outcome}`; logs name message ids, types and members, never content.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use sdx_model::{Coded, ErrorCode};
use sdx_store::AnyStore;

use crate::engine::{Engine, Transport, TransportError};
use crate::envelope;
use crate::error::{ApiError, ApiResult};
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::peer_api::{HttpTransport, MESSAGES_PATH};
use crate::protocol::{self, WIRE_MEDIA_TYPE};
use crate::tls::PeerIdentity;

/// What the hub's handler needs.
#[derive(Clone)]
struct Hub {
    engine: Engine<AnyStore>,
    transport: HttpTransport,
    metrics: Metrics,
}

/// The router of a hub's peer endpoint (served with [`crate::tls::serve_mtls`] like a node's).
pub fn router(engine: Engine<AnyStore>, transport: HttpTransport, metrics: Metrics) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(relay))
        .with_state(Hub { engine, transport, metrics })
        .layer(DefaultBodyLimit::max(protocol::MAX_WIRE_BYTES))
        .fallback(|method: axum::http::Method, uri: axum::extract::OriginalUri| async move {
            ApiError::no_route(&method, uri.path())
        })
}

async fn relay(
    State(hub): State<Hub>,
    member: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body?;
    let refuse = |code: ErrorCode, detail: String| ApiError::peer_problem(code, detail);
    if !envelope::is_envelope(&body) {
        return Err(refuse(ErrorCode::Malformed, "a hub relays envelopes only (messages to members behind it)".into()));
    }
    let route = envelope::peek(&body).map_err(|r| refuse(r.code, r.message))?;
    if route.author != member.org {
        let detail = format!("the envelope's author {} is not the TLS peer {}", route.author, member.org);
        return Err(refuse(ErrorCode::SenderMismatch, detail));
    }
    let engine = &hub.engine;
    let Some(author) = engine.peer(&route.author) else {
        return Err(ApiError::not_a_peer(&route.author));
    };
    let (route, _) =
        envelope::open(&body, &route.author, author.key_for(&body)).map_err(|r| refuse(r.code, r.message))?;
    let unroutable =
        |detail: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongRecipient, detail);
    if route.reader == route.author {
        return Err(unroutable(format!("a message from {} to itself is a loop", route.author)));
    }
    if &route.reader == engine.org() {
        return Err(unroutable("the hub takes no messages of its own; it relays".into()));
    }
    let Some(reader) = engine.peer(&route.reader) else {
        return Err(unroutable(format!("{} is not a member this hub can reach", route.reader)));
    };
    if let Some(other) = &reader.via_hub {
        return Err(unroutable(format!("{} is behind hub {other}: hubs are not chained", route.reader)));
    }
    let text = std::str::from_utf8(&body).map_err(|_| refuse(ErrorCode::Malformed, "not ASCII".into()))?.trim();
    let answer = hub.transport.post(&reader, text).await;
    let outcome = match &answer {
        Ok(_) => DeliveryOutcome::Delivered,
        Err(e) if e.is_transient() => DeliveryOutcome::Retry,
        Err(_) => DeliveryOutcome::Rejected,
    };
    hub.metrics.delivery_attempt(&route.reader, outcome);
    tracing::info!(message_id = %route.message_id, message_type = %route.message_type, author = %route.author,
        reader = %route.reader, outcome = outcome.as_str(), "relayed");
    match answer {
        Ok(receipt) => {
            let mut r = (StatusCode::OK, receipt).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(WIRE_MEDIA_TYPE));
            Ok(r)
        }
        Err(TransportError::Status { status, code, detail, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let code = code.and_then(|c| ErrorCode::parse(&c).ok()).unwrap_or(ErrorCode::Internal);
            Err(ApiError::new(status, code, format!("{}: {detail}", route.reader)))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            format!("{} cannot be reached from the hub now: {e}", route.reader),
        )),
    }
}
