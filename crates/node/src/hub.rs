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

use std::sync::Arc;

use crate::engine::{Accepted, Engine, EngineError, Peer, Relayed, TransportError};
use crate::envelope;
use crate::envelope::Route;
use crate::error::{ApiError, ApiResult};
use crate::peer_api::{BATCH_PATH, BatchRequest, BatchResponse, BatchResult, HttpTransport, MESSAGES_PATH};
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
        .route(BATCH_PATH, post(relay_batch).layer(DefaultBodyLimit::max(protocol::MAX_BATCH_BYTES)))
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
    let (route, reader, text) = check(&hub.engine, &member, &body)?;
    let relayed = match known(&hub.engine, &route).await? {
        Some(answer) => answer,
        None => hub.engine.relay_first(&hub.transport, &route, text, &reader).await?,
    };
    logged(&route, &relayed);
    match relayed {
        Relayed::Receipt(receipt) => {
            let mut r = (StatusCode::OK, receipt).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(WIRE_MEDIA_TYPE));
            Ok(r)
        }
        Relayed::Queued(why) => {
            let note = serde_json::json!({
                "messageId": route.message_id.to_string(),
                "queuedBy": hub.engine.org().to_string(),
                "detail": why,
            });
            Ok((StatusCode::ACCEPTED, axum::Json(note)).into_response())
        }
        Relayed::Refused(e) => Err(refused(&route, e)),
    }
}

/// Several envelopes of one member in one request (`{"messages": [...]}` as a node's `/sdx/v1/batch`): each is
/// checked on its own; the new ones go to each reader as one batch and are stored with their outcomes in one
/// transaction per reader. One result per envelope, in order: `{"receipt"}`, `{"queued"}` (the hub keeps it and
/// will push the receipt; 202 for a single envelope) or `{"problem"}`.
async fn relay_batch(
    State(hub): State<Hub>,
    member: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req = BatchRequest::parse(&body?)?;
    let n = req.messages.len();
    let engine = &hub.engine;
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(n);
    let mut fresh: Vec<(Arc<Peer>, Vec<Fresh<'_>>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let checked = check(engine, &member, m.as_bytes());
        let (route, reader, text) = match checked {
            Ok(c) => c,
            Err(e) => {
                results.push(Some(BatchResult::Problem(e.into())));
                continue;
            }
        };
        match known(engine, &route).await {
            Ok(Some(answer)) => results.push(Some(result(&route, answer))),
            Err(e) => results.push(Some(BatchResult::Problem(e.into()))),
            Ok(None) => {
                results.push(None);
                match fresh.iter_mut().find(|(r, _)| r.org == reader.org) {
                    Some((_, items)) => items.push((i, route, text)),
                    None => fresh.push((reader, vec![(i, route, text)])),
                }
            }
        }
    }
    for (reader, items) in fresh {
        let batch: Vec<(Route, &str)> = items.iter().map(|(_, r, t)| (r.clone(), *t)).collect();
        let relayed = engine.relay_first_batch(&hub.transport, &reader, &batch).await?;
        for ((i, route, _), answer) in items.iter().zip(relayed) {
            logged(route, &answer);
            results[*i] = Some(result(route, answer));
        }
    }
    let results = results.into_iter().map(|r| r.unwrap_or(BatchResult::Queued("not relayed".into()))).collect();
    Ok(axum::Json(BatchResponse { results }).into_response())
}

/// A new envelope of a batch, for its reader: its place in the batch, its route, its text.
type Fresh<'a> = (usize, Route, &'a str);

/// What the hub checks of an envelope from `member`, on the envelope alone: its route, its reader, its text.
fn check<'a>(
    engine: &Engine<AnyStore>,
    member: &PeerIdentity,
    body: &'a [u8],
) -> Result<(Route, Arc<Peer>, &'a str), ApiError> {
    let refuse = |code: ErrorCode, detail: String| ApiError::peer_problem(code, detail);
    if !envelope::is_envelope(body) {
        return Err(refuse(ErrorCode::Malformed, "a hub relays envelopes only (messages to members behind it)".into()));
    }
    // The author must be the TLS peer: open with its key at once; only a refusal reads the route unverified, to
    // say what is wrong (another member's envelope, or a bad signature).
    let Some(author) = engine.peer(&member.org) else {
        return Err(ApiError::not_a_peer(&member.org));
    };
    let route = match envelope::open(body, &member.org, author.key_for(body)) {
        Ok((route, _)) => route,
        Err(r) => {
            let peeked = envelope::peek(body).map_err(|p| refuse(p.code, p.message))?;
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
    let text = std::str::from_utf8(body).map_err(|_| refuse(ErrorCode::Malformed, "not ASCII".into()))?.trim();
    Ok((route, reader, text))
}

/// The answer for an envelope whose message id the hub has seen, if it has.
async fn known(engine: &Engine<AnyStore>, route: &Route) -> Result<Option<Relayed>, ApiError> {
    let known = engine.relay_known(route).await.map_err(|e| match e {
        EngineError::Refused(r) => ApiError::peer_problem(r.code, r.message),
        other => other.into(),
    })?;
    Ok(match known {
        None => None,
        Some(Accepted::Delivered(receipt)) => Some(Relayed::Receipt(receipt)),
        Some(Accepted::Queued(why)) => Some(Relayed::Queued(why)),
        Some(Accepted::Dead(why)) => {
            let detail = format!("the hub gave up delivering it to {}: {why}", route.reader);
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongRecipient, detail));
        }
    })
}

/// The problem for an envelope the reader refused (its problem passed on) or that could not be relayed.
fn refused(route: &Route, e: TransportError) -> ApiError {
    match e {
        TransportError::Status { status, code, detail, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let code = code.and_then(|c| ErrorCode::parse(&c).ok()).unwrap_or(ErrorCode::Internal);
            ApiError::new(status, code, format!("{}: {detail}", route.reader))
        }
        e => ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::Internal, e.to_string()),
    }
}

/// One envelope's result in a batch answer.
fn result(route: &Route, relayed: Relayed) -> BatchResult {
    match relayed {
        Relayed::Receipt(r) => BatchResult::Receipt(r),
        Relayed::Queued(why) => BatchResult::Queued(why),
        Relayed::Refused(e) => BatchResult::Problem(refused(route, e).into()),
    }
}

fn logged(route: &Route, relayed: &Relayed) {
    tracing::info!(message_id = %route.message_id, message_type = %route.message_type, author = %route.author,
        reader = %route.reader, answer = relayed.as_str(), "relayed");
}
