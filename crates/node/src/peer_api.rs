//! The peer endpoint over HTTP: `POST /sdx/v1/messages` hands a sealed message from the TLS-authenticated
//! peer to the [`Engine`] and answers with its signed receipt; `POST /sdx/v1/batch` does the same for several
//! messages in one request (one transaction at the receiver); [`HttpTransport`] is the sending side.
//!
//! Answers to `/messages`: `200 application/jose` with the receipt (positive or negative — the receipt is the
//! business answer); `4xx application/problem+json` (RFC 9457) only when no receipt can be made; `413` for a
//! body over [`protocol::MAX_WIRE_BYTES`]; `503` (retryable) when the store fails.
//!
//! `/batch` takes `application/json` `{"messages": ["<JWS>", …]}` (1 to [`protocol::MAX_BATCH_MESSAGES`]
//! messages of at most [`protocol::MAX_BATCH_ITEM_BYTES`] each) and answers `200 application/json`
//! `{"results": [{"receipt": "<JWS>"} | {"problem": {…}}, …]}`, one result per message, in order, each exactly
//! what `/messages` would have answered for it; `400` if the batch itself is malformed, `503` if the store
//! fails (then nothing of the batch was stored).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sdx_store::Store;
use serde::{Deserialize, Serialize};

use sdx_model::{Coded, ErrorCode};

use crate::engine::{Answer, Engine, EngineError, Peer, Transport, TransportError};
use crate::local_api::problem;
use crate::protocol::{self, WIRE_MEDIA_TYPE};
use crate::tls::PeerIdentity;

/// Path of the peer endpoint.
pub const MESSAGES_PATH: &str = "/sdx/v1/messages";
/// Path of the batch endpoint.
pub const BATCH_PATH: &str = "/sdx/v1/batch";
/// A no-op endpoint on the same stack (mutual TLS, peer identity, body limit): the transport baseline of
/// `sdx bench forward`. It reads the body and answers 204.
pub const NOOP_PATH: &str = "/sdx/v1/noop";

/// The router of the peer endpoint (to be served with [`crate::tls::serve_mtls`]).
pub fn router<S: Store>(engine: Engine<S>) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(receive::<S>).layer(DefaultBodyLimit::max(protocol::MAX_WIRE_BYTES)))
        .route(BATCH_PATH, post(receive_batch::<S>).layer(DefaultBodyLimit::max(protocol::MAX_BATCH_BYTES)))
        .route(NOOP_PATH, post(|_peer: PeerIdentity, _body: Bytes| async { StatusCode::NO_CONTENT }))
        .layer(DefaultBodyLimit::max(protocol::MAX_WIRE_BYTES))
        .with_state(engine)
}

/// A batch request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The sealed messages (JWS compact serialization).
    pub messages: Vec<String>,
}

/// The answer to a batch request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResponse {
    /// One result per message, in order.
    pub results: Vec<BatchResult>,
}

/// The answer for one message of a batch.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchResult {
    /// Its signed receipt (positive or negative).
    Receipt(String),
    /// Why no receipt can be made (RFC 9457 members).
    Problem(BatchProblem),
}

/// A problem for one message of a batch.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchProblem {
    /// The HTTP status `/messages` would have answered.
    pub status: u16,
    /// Stable SDX error code.
    pub error_code: String,
    /// Explanation.
    pub detail: String,
}

fn store_failed(peer: &sdx_model::OrgKey, e: EngineError) -> Response {
    if let EngineError::Conflict = e {
        return problem(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, "concurrent change; retry");
    }
    // Engine errors name ids and codes only, never personal data.
    tracing::error!(peer = %peer, error = %e, "receive failed");
    problem(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, "the receiver could not commit the message; retry")
}

/// The HTTP status of a problem the engine reports for a message it cannot answer with a receipt.
fn problem_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::UnknownSender => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn receive_batch<S: Store>(State(engine): State<Engine<S>>, peer: PeerIdentity, body: Bytes) -> Response {
    let req: BatchRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(StatusCode::BAD_REQUEST, ErrorCode::Malformed, format!("not a batch request: {e}"));
        }
    };
    let n = req.messages.len();
    if n == 0 || n > protocol::MAX_BATCH_MESSAGES {
        let detail = format!("a batch has 1 to {} messages, not {n}", protocol::MAX_BATCH_MESSAGES);
        return problem(StatusCode::BAD_REQUEST, ErrorCode::TooLarge, detail);
    }
    if let Some(i) = req.messages.iter().position(|m| m.len() > protocol::MAX_BATCH_ITEM_BYTES) {
        let detail = format!("message {i} is larger than {} bytes; send it alone", protocol::MAX_BATCH_ITEM_BYTES);
        return problem(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, detail);
    }
    let wires: Vec<&[u8]> = req.messages.iter().map(|m| m.as_bytes()).collect();
    match engine.receive_batch(&wires, &peer.org).await {
        Ok(answers) => {
            let results = answers
                .into_iter()
                .map(|a| match a {
                    Answer::Receipt { jws, .. } => BatchResult::Receipt(jws),
                    Answer::Problem { code, detail } => {
                        let status = problem_status(code).as_u16();
                        BatchResult::Problem(BatchProblem { status, error_code: code.code().to_string(), detail })
                    }
                })
                .collect();
            axum::Json(BatchResponse { results }).into_response()
        }
        Err(e) => store_failed(&peer.org, e),
    }
}

async fn receive<S: Store>(State(engine): State<Engine<S>>, peer: PeerIdentity, body: Bytes) -> Response {
    match engine.receive(&body, &peer.org).await {
        Ok(Answer::Receipt { jws, .. }) => {
            let mut r = (StatusCode::OK, jws).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(WIRE_MEDIA_TYPE));
            r
        }
        Ok(Answer::Problem { code, detail }) => problem(problem_status(code), code, detail),
        Err(e) => store_failed(&peer.org, e),
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

impl HttpTransport {
    /// POST `body` to `url` and read the whole answer: `(status, body)`, or why there is none.
    async fn exchange(
        &self,
        url: &str,
        content_type: &'static str,
        body: String,
    ) -> Result<(StatusCode, Vec<u8>), TransportError> {
        let resp = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| TransportError::Network(format!("{url}: {}", describe(&e))))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Network(format!("{url}: reading the answer: {}", describe(&e))))?;
        Ok((status, body.to_vec()))
    }
}

/// A reqwest error in one line: each distinct cause once, outermost first.
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

impl Transport for HttpTransport {
    async fn post(&self, peer: &Peer, jws: &str) -> Result<Vec<u8>, TransportError> {
        let url = format!("{}{MESSAGES_PATH}", peer.url.trim_end_matches('/'));
        let (status, body) = self.exchange(&url, WIRE_MEDIA_TYPE, jws.to_string()).await?;
        if status == StatusCode::OK { Ok(body) } else { Err(TransportError::from_answer(status.as_u16(), &body)) }
    }

    async fn post_batch(
        &self,
        peer: &Peer,
        jws: &[&str],
    ) -> Result<Vec<Result<Vec<u8>, TransportError>>, TransportError> {
        let url = format!("{}{BATCH_PATH}", peer.url.trim_end_matches('/'));
        let req = serde_json::json!({ "messages": jws });
        let (status, body) = self.exchange(&url, "application/json", req.to_string()).await?;
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            // A peer without the batch endpoint: one by one.
            let mut out = Vec::with_capacity(jws.len());
            for j in jws {
                out.push(self.post(peer, j).await);
            }
            return Ok(out);
        }
        if status != StatusCode::OK {
            return Err(TransportError::from_answer(status.as_u16(), &body));
        }
        let answer: BatchResponse = serde_json::from_slice(&body)
            .map_err(|e| TransportError::Protocol(format!("{url}: not a batch answer: {e}")))?;
        Ok(answer
            .results
            .into_iter()
            .map(|r| match r {
                BatchResult::Receipt(jws) => Ok(jws.into_bytes()),
                BatchResult::Problem(p) => Err(TransportError::Status {
                    status: p.status,
                    retryable: p.status >= 500 || p.status == 408 || p.status == 429,
                    code: Some(p.error_code),
                    detail: p.detail,
                }),
            })
            .collect())
    }
}
