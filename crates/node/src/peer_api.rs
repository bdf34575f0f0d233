//! The peer endpoint over HTTP: `POST /sdx/v1/messages` hands a sealed message from the TLS-authenticated
//! peer to the [`Engine`] and answers with its signed receipt; [`HttpTransport`] is the sending side.
//!
//! Answers: `200 application/jose` with the receipt (positive or negative — the receipt is the business
//! answer); `4xx application/problem+json` (RFC 9457) only when no receipt can be made; `413` for a body over
//! [`protocol::MAX_WIRE_BYTES`]; `503` (retryable) when the store fails.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sdx_store::Store;

use sdx_model::ErrorCode;

use crate::engine::{Answer, Engine, EngineError, Peer, Transport};
use crate::local_api::problem;
use crate::protocol::{self, WIRE_MEDIA_TYPE};
use crate::tls::PeerIdentity;

/// Path of the peer endpoint.
pub const MESSAGES_PATH: &str = "/sdx/v1/messages";
/// A no-op endpoint on the same stack (mutual TLS, peer identity, body limit): the transport baseline of
/// `sdx bench forward`. It reads the body and answers 204.
pub const NOOP_PATH: &str = "/sdx/v1/noop";

/// The router of the peer endpoint (to be served with [`crate::tls::serve_mtls`]).
pub fn router<S: Store>(engine: Engine<S>) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(receive::<S>))
        .route(NOOP_PATH, post(|_peer: PeerIdentity, _body: Bytes| async { StatusCode::NO_CONTENT }))
        .layer(DefaultBodyLimit::max(protocol::MAX_WIRE_BYTES))
        .with_state(engine)
}

async fn receive<S: Store>(State(engine): State<Engine<S>>, peer: PeerIdentity, body: Bytes) -> Response {
    match engine.receive(&body, &peer.org).await {
        Ok(Answer::Receipt { jws, .. }) => {
            let mut r = (StatusCode::OK, jws).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(WIRE_MEDIA_TYPE));
            r
        }
        Ok(Answer::Problem { status, code, detail }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            problem(status, code, detail)
        }
        Err(EngineError::Conflict) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, "concurrent change; retry")
        }
        Err(e) => {
            // Engine errors name ids and codes only, never personal data.
            tracing::error!(peer = %peer.org, error = %e, "receive failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                "the receiver could not commit the message; retry",
            )
        }
    }
}

/// Sends sealed messages to peers over mutual TLS.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A transport using this (mutual-TLS) client, e.g. from [`crate::tls::http_client`].
    pub fn new(client: reqwest::Client) -> Self {
        HttpTransport { client }
    }
}

impl Transport for HttpTransport {
    async fn post(&self, peer: &Peer, jws: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}{MESSAGES_PATH}", peer.url.trim_end_matches('/'));
        let resp = self
            .client
            .post(&url)
            .header(header::CONTENT_TYPE, WIRE_MEDIA_TYPE)
            .body(jws.to_string())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("{url}: reading the answer: {e}"))?;
        if status == StatusCode::OK {
            Ok(body.to_vec())
        } else {
            let detail: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            Err(format!("{url}: HTTP {status}: {detail}"))
        }
    }
}
