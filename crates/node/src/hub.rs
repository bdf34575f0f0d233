//! Hub mode (`[node] role = "hub"`, issue 9; `docs/routing.md`, *Hub*): the same binary, serving a peer endpoint
//! that stores and forwards members' enveloped messages (`crate::envelope`) by their route and reads none of them.
//!
//! For every `POST /sdx/v1/messages` the hub checks, on the envelope alone: it is an envelope; its route's author is
//! the member the mutual-TLS certificate names; the author's signature over route and ciphertext is valid (the key
//! from the directory or the hub's `[[peers]]`); the reader is a member the hub can reach, not the author itself
//! (a loop), not the hub, and not behind another hub (no chains). A new envelope goes to the reader at once, and
//! is stored in the hub's outbox with the outcome before the author is answered (`crate::engine::relay`): the
//! reader's signed receipt — which only the author can check against what it sent — with 200; a reader that
//! cannot be reached gets the envelope later from the hub's outbox and the author 202 now, its receipt pushed
//! to it when it is there; the reader's refusal (a problem) is passed on. Logs name message ids, types and
//! members, never content.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use sdx_model::{Coded, ErrorCode};
use sdx_store::AnyStore;

use crate::engine::{Accepted, Engine, EngineError, Relayed, TransportError};
use crate::envelope;
use crate::error::{ApiError, ApiResult};
use crate::peer_api::{HttpTransport, MESSAGES_PATH};
use crate::protocol::{self, WIRE_MEDIA_TYPE};
use crate::tls::PeerIdentity;

/// What the hub's handler needs.
#[derive(Clone)]
struct Hub {
    engine: Engine<AnyStore>,
    transport: HttpTransport,
}

/// The router of a hub's peer endpoint (served with [`crate::tls::serve_mtls`] like a node's).
pub fn router(engine: Engine<AnyStore>, transport: HttpTransport) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(relay))
        .with_state(Hub { engine, transport })
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
    let engine = &hub.engine;
    // The author must be the TLS peer: open with its key at once; only a refusal reads the route unverified, to
    // say what is wrong (another member's envelope, or a bad signature).
    let Some(author) = engine.peer(&member.org) else {
        return Err(ApiError::not_a_peer(&member.org));
    };
    let route = match envelope::open(&body, &member.org, author.key_for(&body)) {
        Ok((route, _)) => route,
        Err(r) => {
            let peeked = envelope::peek(&body).map_err(|p| refuse(p.code, p.message))?;
            if peeked.author != member.org {
                let detail = format!("the envelope's author {} is not the TLS peer {}", peeked.author, member.org);
                return Err(refuse(ErrorCode::SenderMismatch, detail));
            }
            return Err(refuse(r.code, r.message));
        }
    };
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
    let known = engine.relay_known(&route).await.map_err(|e| match e {
        EngineError::Refused(r) => ApiError::peer_problem(r.code, r.message),
        other => other.into(),
    })?;
    let relayed = match known {
        None => engine.relay_first(&hub.transport, &route, text, &reader).await?,
        Some(Accepted::Delivered(receipt)) => Relayed::Receipt(receipt),
        Some(Accepted::Queued(why)) => Relayed::Queued(why),
        Some(Accepted::Dead(why)) => {
            let detail = format!("the hub gave up delivering it to {}: {why}", route.reader);
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongRecipient, detail));
        }
    };
    tracing::info!(message_id = %route.message_id, message_type = %route.message_type, author = %route.author,
        reader = %route.reader, answer = relayed.as_str(), "relayed");
    match relayed {
        Relayed::Receipt(receipt) => {
            let mut r = (StatusCode::OK, receipt).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(WIRE_MEDIA_TYPE));
            Ok(r)
        }
        Relayed::Queued(why) => {
            let note = serde_json::json!({
                "messageId": route.message_id.to_string(),
                "queuedBy": engine.org().to_string(),
                "detail": why,
            });
            Ok((StatusCode::ACCEPTED, axum::Json(note)).into_response())
        }
        Relayed::Refused(TransportError::Status { status, code, detail, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let code = code.and_then(|c| ErrorCode::parse(&c).ok()).unwrap_or(ErrorCode::Internal);
            Err(ApiError::new(status, code, format!("{}: {detail}", route.reader)))
        }
        Relayed::Refused(e) => Err(ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::Internal, e.to_string())),
    }
}
