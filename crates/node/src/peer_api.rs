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
//! what `/messages` would have answered for it (a problem as `{status, errorCode, detail, retryable}`); `400` if
//! the batch itself is malformed, `503` if the store fails (then nothing of the batch was stored).
//!
//! `/receipts` is where a hub pushes the receipt of a message it answered with 202 (`crate::engine::relay`): the
//! reader's signed receipt, judged like a direct answer ([`Engine::receive_relayed_receipt`]); 204.
//!
//! Every error answer is an [`ApiError`] (`crate::error`), which also chooses the status of the engine's
//! problems; every route is registered with its `#[utoipa::path]` documentation ([`routes`], [`api`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sdx_store::Store;
use serde::{Deserialize, Serialize};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};

use sdx_model::{Coded, ErrorCode};

use crate::apidoc::op;
use crate::engine::{Answer, Engine, EngineError, Peer, Transport, TransportError};
use crate::error::{ApiError, ApiResult, Problem};
use crate::protocol::{self, WIRE_MEDIA_TYPE};
use crate::tls::PeerIdentity;

/// Path of the peer endpoint.
pub const MESSAGES_PATH: &str = "/sdx/v1/messages";
/// Path where a hub pushes the receipts of messages it queued (`crate::hub`).
pub const RECEIPTS_PATH: &str = "/sdx/v1/receipts";
/// Path of the batch endpoint.
pub const BATCH_PATH: &str = "/sdx/v1/batch";
/// A no-op endpoint on the same stack (mutual TLS, peer identity, body limit): the transport baseline of
/// `sdx bench forward`. It reads the body and answers 204 — to configured peers only; any other organisation
/// of the federation gets 403 `unknownSender`.
pub const NOOP_PATH: &str = "/sdx/v1/noop";

/// The router of the peer endpoint (to be served with [`crate::tls::serve_mtls`]): the routes of [`routes`] and
/// problem answers for unknown routes (404) and methods (405).
pub fn router<S: Store>(engine: Engine<S>) -> Router {
    let (router, _) = routes::<S>().split_for_parts();
    router
        .with_state(engine)
        .layer(DefaultBodyLimit::max(protocol::MAX_WIRE_BYTES))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}

/// The documented routes of the peer endpoint.
pub fn routes<S: Store>() -> OpenApiRouter<Engine<S>> {
    OpenApiRouter::new()
        .routes(op::<__path_receive, _, _, _>(receive::<S>).layer(DefaultBodyLimit::max(protocol::MAX_WIRE_BYTES)))
        .routes(
            op::<__path_receive_batch, _, _, _>(receive_batch::<S>)
                .layer(DefaultBodyLimit::max(protocol::MAX_BATCH_BYTES)),
        )
        .routes(op::<__path_noop, _, _, _>(noop::<S>))
        .routes(
            op::<__path_receive_relayed_receipt, _, _, _>(receive_relayed_receipt::<S>)
                .layer(DefaultBodyLimit::max(protocol::MAX_BATCH_ITEM_BYTES)),
        )
}

/// The documentation of the peer endpoint's routes.
pub fn api() -> OpenApi {
    routes::<sdx_store::AnyStore>().into_openapi()
}

async fn no_route(method: Method, uri: OriginalUri) -> ApiError {
    ApiError::no_route(&method, uri.path())
}

async fn wrong_method(method: Method, uri: OriginalUri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

/// A batch request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The sealed messages (JWS compact serialization), 1 to 64, each at most 2 MiB.
    #[schema(min_items = 1, max_items = 64)]
    pub messages: Vec<String>,
}

impl BatchRequest {
    /// A batch request from its body: 1 to [`protocol::MAX_BATCH_MESSAGES`] messages of at most
    /// [`protocol::MAX_BATCH_ITEM_BYTES`] each (400 `malformed` / `tooLarge`, 413 for an oversized message).
    ///
    /// # Errors
    /// The problem to answer.
    pub fn parse(body: &[u8]) -> ApiResult<BatchRequest> {
        let req: BatchRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(ErrorCode::Malformed, format!("not a batch request: {e}")))?;
        let n = req.messages.len();
        if n == 0 || n > protocol::MAX_BATCH_MESSAGES {
            let detail = format!("a batch has 1 to {} messages, not {n}", protocol::MAX_BATCH_MESSAGES);
            return Err(ApiError::bad_request(ErrorCode::TooLarge, detail));
        }
        if let Some(i) = req.messages.iter().position(|m| m.len() > protocol::MAX_BATCH_ITEM_BYTES) {
            let detail = format!("message {i} is larger than {} bytes; send it alone", protocol::MAX_BATCH_ITEM_BYTES);
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, detail));
        }
        Ok(req)
    }
}

/// The answer to a batch request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchResponse {
    /// One result per message, in order.
    pub results: Vec<BatchResult>,
}

/// The answer for one message of a batch.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum BatchResult {
    /// Its signed receipt (positive or negative).
    Receipt(String),
    /// Only from a hub: it keeps the envelope in its outbox and will push the receipt (what a single envelope
    /// gets as 202); why it waits.
    Queued(String),
    /// Why no receipt can be made (RFC 9457 members).
    Problem(BatchProblem),
}

/// A problem for one message of a batch: what `/messages` would have answered for it, in short.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchProblem {
    /// The HTTP status `/messages` would have answered.
    pub status: u16,
    /// Stable SDX error code.
    pub error_code: String,
    /// Explanation.
    pub detail: String,
    /// Whether sending the message again may succeed (the status is 5xx or 429). Absent from older peers'
    /// answers: then derived from `status`.
    #[serde(default)]
    pub retryable: bool,
}

impl From<ApiError> for BatchProblem {
    fn from(e: ApiError) -> Self {
        BatchProblem {
            status: e.status().as_u16(),
            error_code: e.code().code().to_string(),
            retryable: e.retryable(),
            detail: e.detail().to_string(),
        }
    }
}

/// The body as bytes, or the problem for a body that cannot be read (413 over the limit).
fn read(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    Ok(body?)
}

/// Several sealed messages in one request, stored in one transaction at the receiver.
#[utoipa::path(
    post,
    path = "/sdx/v1/batch",
    operation_id = "receiveBatch",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One result per message, in order: its signed receipt, or the problem /sdx/v1/messages would have answered for it", body = BatchResponse),
        (status = 400, description = "Not a batch request (malformed) or not 1 to 64 messages (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client certificate names no organisation of the federation, or one that is not a configured peer (unknownSender)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The batch or one of its messages is over its size limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The receiver could not commit; nothing of the batch was stored; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("mtls" = []))
)]
async fn receive_batch<S: Store>(
    State(engine): State<Engine<S>>,
    peer: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let req = BatchRequest::parse(&read(body)?)?;
    let wires: Vec<&[u8]> = req.messages.iter().map(|m| m.as_bytes()).collect();
    let answers = engine.receive_batch(&wires, &peer.org).await?;
    engine.feed_signal().notify_waiters();
    let results = answers
        .into_iter()
        .map(|a| match a {
            Answer::Receipt { jws, .. } => BatchResult::Receipt(jws),
            Answer::Problem { code, detail } => BatchResult::Problem(ApiError::peer_problem(code, detail).into()),
        })
        .collect();
    Ok(axum::Json(BatchResponse { results }).into_response())
}

/// One sealed SDX message (JWS over the RFC 8785 canonical JSON); the answer is its signed receipt.
#[utoipa::path(
    post,
    path = "/sdx/v1/messages",
    operation_id = "receiveMessage",
    request_body(description = "The sealed message, JWS compact serialization (the media type is not checked; text/plain is listed for clients without a serializer for application/jose)", content(
        (String = "application/jose"),
        (String = "text/plain")
    )),
    responses(
        (status = 200, description = "The signed receipt (positive or negative), a JWS", body = String, content_type = "application/jose"),
        (status = 400, description = "No receipt can be made: not a JWS, bad signature, … (errorCode says which)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client certificate names no organisation of the federation, or one that is not a configured peer (unknownSender)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the wire limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The receiver could not commit the message; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("mtls" = []))
)]
async fn receive<S: Store>(
    State(engine): State<Engine<S>>,
    peer: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = read(body)?;
    let answer = engine.receive(&body, &peer.org).await?;
    engine.feed_signal().notify_waiters();
    match answer {
        Answer::Receipt { jws, .. } => {
            let mut r = (StatusCode::OK, jws).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(WIRE_MEDIA_TYPE));
            Ok(r)
        }
        Answer::Problem { code, detail } => Err(ApiError::peer_problem(code, detail)),
    }
}

/// A hub pushes the signed receipt of a message this node sent through it, which the hub answered with 202
/// (queued) and delivered later (`crate::hub`). The receipt is the reader's own, checked as if it had come
/// directly; a receipt that comes twice changes nothing the second time.
#[utoipa::path(
    post,
    path = "/sdx/v1/receipts",
    operation_id = "receiveRelayedReceipt",
    request_body(description = "The reader's signed receipt, JWS compact serialization", content(
        (String = "application/jose"),
        (String = "text/plain")
    )),
    responses(
        (status = 204, description = "Recorded, or the message already had its answer"),
        (status = 400, description = "Not a receipt (malformed); it does not verify or answers something else (signatureInvalid); no message with that id was sent from here (unknownCase); its author is not reached through the hub that sends it (senderMismatch)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than a receipt can be (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The receipt could not be committed; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("mtls" = []))
)]
async fn receive_relayed_receipt<S: Store>(
    State(engine): State<Engine<S>>,
    hub: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let body = read(body)?;
    engine.receive_relayed_receipt(&hub.org, &body).await.map_err(|e| match e {
        EngineError::Refused(r) => ApiError::peer_problem(r.code, r.message),
        other => other.into(),
    })?;
    engine.feed_signal().notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

/// Transport baseline: reads the body on the same mutual-TLS stack and answers 204, to configured peers only.
#[utoipa::path(
    post,
    path = "/sdx/v1/noop",
    operation_id = "noop",
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "Anything or nothing, at most the wire limit"),
    responses(
        (status = 204, description = "Nothing"),
        (status = 403, description = "The client certificate names no organisation of the federation, or one that is not a configured peer (unknownSender)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the wire limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("mtls" = []))
)]
async fn noop<S: Store>(
    State(engine): State<Engine<S>>,
    peer: PeerIdentity,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    if !engine.is_peer(&peer.org) {
        return Err(ApiError::not_a_peer(&peer.org));
    }
    read(body)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends sealed messages to peers over mutual TLS.
#[derive(Clone)]
pub struct HttpTransport {
    client: std::sync::Arc<std::sync::RwLock<reqwest::Client>>,
}

impl HttpTransport {
    /// A transport using this (mutual-TLS) client, e.g. from [`crate::tls::http_client`].
    pub fn new(client: reqwest::Client) -> Self {
        HttpTransport { client: std::sync::Arc::new(std::sync::RwLock::new(client)) }
    }

    /// Use `client` from now on (every clone of this transport): its connections are new, so they are made under
    /// its TLS settings — e.g. after the directory's certificate pins changed. Requests in flight finish on the old
    /// one, whose connections close when they are done.
    pub fn replace_client(&self, client: reqwest::Client) {
        *self.client.write().unwrap_or_else(std::sync::PoisonError::into_inner) = client;
    }

    fn client(&self) -> reqwest::Client {
        self.client.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
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
            .client()
            .post(url)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| TransportError::Network(format!("{url}: {}", crate::tls::describe_client_error(&e))))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            TransportError::Network(format!("{url}: reading the answer: {}", crate::tls::describe_client_error(&e)))
        })?;
        Ok((status, body.to_vec()))
    }
}

impl Transport for HttpTransport {
    async fn push_receipt(&self, author: &Peer, receipt: &str) -> Result<(), TransportError> {
        let url = format!("{}{RECEIPTS_PATH}", author.url.trim_end_matches('/'));
        let (status, body) = self.exchange(&url, WIRE_MEDIA_TYPE, receipt.to_string()).await?;
        if status.is_success() { Ok(()) } else { Err(TransportError::from_answer(status.as_u16(), &body)) }
    }

    async fn post(&self, peer: &Peer, jws: &str) -> Result<Vec<u8>, TransportError> {
        let url = format!("{}{MESSAGES_PATH}", peer.url.trim_end_matches('/'));
        let (status, body) = self.exchange(&url, WIRE_MEDIA_TYPE, jws.to_string()).await?;
        match status {
            StatusCode::OK => Ok(body),
            StatusCode::ACCEPTED => Err(TransportError::Queued(
                String::from_utf8_lossy(&body).chars().filter(|c| !c.is_control()).take(300).collect(),
            )),
            _ => Err(TransportError::from_answer(status.as_u16(), &body)),
        }
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
                BatchResult::Queued(why) => Err(TransportError::Queued(why)),
                BatchResult::Problem(p) => Err(TransportError::Status {
                    status: p.status,
                    retryable: p.retryable || TransportError::retryable_status(p.status),
                    code: Some(p.error_code),
                    detail: p.detail,
                }),
            })
            .collect())
    }
}
