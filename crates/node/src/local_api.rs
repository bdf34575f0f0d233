//! The local API for the organisation's own ticket system and operators: JSON over HTTP, one bearer token
//! per client (stored as SHA-256, compared in constant time), errors as `application/problem+json`
//! (RFC 9457) with the stable SDX error code in `errorCode`.
//!
//! | method and path | does |
//! |---|---|
//! | `POST /api/v1/cases?waitForReceipt=` | create a case (`{"case": …, "note": …}`) and forward it to its assignee → 201; with `waitForReceipt=S` (≤ 60) the answer waits up to S seconds for the assignee's signed receipt and says `"delivered": true/false` |
//! | `POST /api/v1/cases/{id}/changes` | apply a change — one message body, e.g. `{"update": {…}}`, `{"resolve": {…}}`, `{"handBack": {…}}`, `{"close": {…}}`, `{"reopen": {…}}`, `{"reject": {…}}` — and send it to the partner |
//! | `GET /api/v1/cases/{id}?fields=` | the case, its partner, our role and the cross-organisation timeline |
//! | `GET /api/v1/cases?status=&ticketType=&priority=&leikaKey=&region=&partner=&updatedSince=&cursor=&limit=&fields=` | query, keyset-paged |
//! | `GET /api/v1/deliveries?state=pending\|delivered\|rejected\|dead\|skipped\|superseded&limit=` | the outbox |
//! | `POST /api/v1/deliveries/{messageId}/retry` | put a dead letter back into delivery (attempts and age start afresh) |
//! | `POST /api/v1/deliveries/{messageId}/skip` | give a dead letter up: its change is withdrawn from the case and the messages behind it are renumbered and sent |
//! | `POST /api/v1/cases/{id}/escalations` | escalate a case this node works on to the next support level (e.g. to its vendor): a child case goes there, the case follows its status (`engine::escalate`) |
//! | `PUT /api/v1/cases/{id}/owner` | operators: give the case to one of the organisation's ticket systems (`crate::clients`) |
//! | `GET /api/v1/blocked?limit=` | cases whose outgoing messages wait behind a dead letter, with the reason |
//! | `POST /api/v1/notices`, `GET /api/v1/notices`, `DELETE /api/v1/notices/{id}` | service notices: publish or update, list the active ones, end (`crate::notices_api`) |
//! | `GET /notices.atom` | the active service notices as an Atom feed for portals (no token needed: public data) |
//! | `GET /api/v1/openapi.json` | the OpenAPI 3.1 document (no token needed) |
//!
//! `fields` (TMF621 attribute selection) is a comma-separated list of names to return. A name is either a
//! top-level member of the case view — `case`, `partner`, `ourRole`, `updatedAt`, and on `GET /api/v1/cases/{id}`
//! also `timeline` (not selecting it also saves reading it) — or a top-level attribute of the case, one of the
//! members of `sdx_model::Case` (`caseId`, `status`, `priority`, `subject`, …; the list comes from the format
//! description `sdx_codec::desc::CASE`). A case attribute is returned inside `case`:
//! `?fields=status,priority,partner` gives `{"case": {"caseId": …, "status": …, "priority": …}, "partner": …}`;
//! an optional attribute the case does not have (say `solution`) stays absent. `updatedAt` is both a view member
//! (when this node last changed the record) and a case attribute (the case's own last change): it selects both.
//! The case id is always returned at the same place as in the full view, `case.caseId`; if `case` itself is
//! selected, the whole case is returned and case attributes add nothing. A selected response is thus always a
//! projection of the full one. Names are exact (case sensitive) and may repeat; an unknown name, a nested path such
//! as `case.status` (not supported; name `status`), an empty entry (`fields=,partner`) or an empty list (`fields=`)
//! is refused with 400 `schemaViolation`, naming the allowed view members and case attributes. Without `fields`
//! the full view is returned. Both endpoints refuse unknown query parameters with 400 `schemaViolation`.
//!
//! Documents are checked like `sdx validate` checks a message: `POST /api/v1/cases` takes the body of a forward
//! and `POST /api/v1/cases/{id}/changes` a message body, each decoded by the codec's strict decoder
//! (`sdx_codec::validate::validate_forward` / `validate_body`: size, syntax, duplicate and unknown members, an
//! array where the schema has an object, nesting, types, identifiers, codes → 400 with the finding's code; then
//! the rules beyond the schema → 422), so the local API accepts nothing the format refuses. Query parameters are
//! checked as strictly: unknown ones, empty values, `limit` outside 1–500 and timestamps outside what
//! `Timestamp::parse` accepts are refused with 400. Every error is an [`ApiError`] (`crate::error`).
//!
//! Every route is registered with its `#[utoipa::path]` documentation ([`apidoc::op`]); the OpenAPI document
//! ([`api`], served at `GET /api/v1/openapi.json`) is built from these registrations.
//!
//! A client with `cases = "own"` (one of several ticket systems of the organisation) sees and changes only the
//! cases it owns, and not the operators' routes (deliveries, blocked cases, owners); see [`crate::clients`].
//!
//! Personal data (the requester) is returned to authenticated clients only and never logged.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa::openapi::{OpenApi, RefOr, schema::Schema};
use utoipa_axum::router::OpenApiRouter;

use sdx_model::{Ars, CaseId, Coded, ErrorCode, LeikaKey, MessageId, OrgKey, Status, Timestamp};
use sdx_store::{CaseQuery, CaseRecord, DeliveryState, MAX_PAGE, Store, TimelineEvent};

use crate::apidoc::{self, ITEM_MEMBERS, VIEW_MEMBERS, allowed_names, case_attributes, op};
use crate::clients::Caller;
use crate::engine::Engine;
use crate::error::{ApiError, ApiResult, Problem};
use crate::settings::{ApiClient, CaseScope};

/// Path prefix of the local API.
pub const API_PREFIX: &str = "/api/v1";
/// Path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

pub(crate) struct ApiState<S: Store> {
    pub(crate) engine: Engine<S>,
    /// SHA-256 of each client's token, and who it is.
    tokens: Vec<([u8; 32], Caller)>,
    /// The clients limited to their own cases: the owners an operator may give a case to.
    owners: Vec<String>,
    /// Longest wait of a change feed request.
    pub(crate) feed_max_wait: std::time::Duration,
}

pub(crate) type Shared<S> = Arc<ApiState<S>>;

/// The router of the local API (plain HTTP: keep it on loopback or behind a TLS proxy): the routes of
/// `routes` behind bearer tokens, `GET /api/v1/openapi.json` without, and problem answers for unknown routes
/// (404) and methods (405).
pub fn router<S: Store>(engine: Engine<S>, clients: &[ApiClient]) -> Router {
    let wait = std::time::Duration::from_secs(crate::connector_api::MAX_FEED_WAIT_S);
    router_with(engine, clients, wait)
}

/// [`router`] with change feed requests waiting at most `feed_max_wait` (`[api] feed_max_wait_s`).
pub fn router_with<S: Store>(engine: Engine<S>, clients: &[ApiClient], feed_max_wait: std::time::Duration) -> Router {
    let tokens = clients
        .iter()
        .filter_map(|c| {
            // Settings checked the form (64 lowercase hex digits); anything else matches no token.
            let mut h = [0u8; 32];
            hex::decode_to_slice(&c.token_sha256, &mut h).ok()?;
            Some((h, Caller { name: c.name.clone(), scope: c.cases }))
        })
        .collect();
    let owners = clients.iter().filter(|c| c.cases == CaseScope::Own).map(|c| c.name.clone()).collect();
    let state: Shared<S> = Arc::new(ApiState { engine, tokens, owners, feed_max_wait });
    let (protected, local) = routes::<S>().split_for_parts();
    let (public, doc) = document_route().split_for_parts();
    let (feed, feed_doc) = crate::notices_api::public_routes::<S>().split_for_parts();
    let document =
        Arc::new(apidoc::finish(merged([local, doc, feed_doc, crate::ops_api::api(), crate::peer_api::api()])));
    protected
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate::<S>))
        .merge(feed)
        .with_state(state)
        .merge(public.with_state(document))
        .layer(DefaultBodyLimit::max(sdx_model::rules::limits::MAX_DOCUMENT_BYTES))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}

/// The documented routes that need a bearer token.
fn routes<S: Store>() -> OpenApiRouter<Shared<S>> {
    OpenApiRouter::new()
        .routes(op::<__path_create, _, _, _>(create::<S>))
        .routes(op::<__path_list, _, _, _>(list::<S>))
        .routes(op::<__path_get_case, _, _, _>(get_case::<S>))
        .routes(op::<__path_change, _, _, _>(change::<S>))
        .routes(op::<__path_deliveries, _, _, _>(deliveries::<S>))
        .routes(op::<__path_retry, _, _, _>(retry::<S>))
        .routes(op::<__path_skip, _, _, _>(skip::<S>))
        .routes(op::<__path_blocked, _, _, _>(blocked::<S>))
        .routes(op::<__path_escalate, _, _, _>(escalate::<S>))
        .routes(op::<__path_set_owner, _, _, _>(set_owner::<S>))
        .merge(crate::connector_api::routes::<S>())
        .merge(crate::notices_api::routes::<S>())
}

fn document_route() -> OpenApiRouter<Arc<Value>> {
    OpenApiRouter::new().routes(op::<__path_openapi, _, _, _>(openapi))
}

fn merged(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    parts.into_iter().fold(OpenApi::default(), |mut all, part| {
        all.merge(part);
        all
    })
}

/// The documentation of every route the node serves: the local API (these routes and the document's own), the
/// operations endpoints ([`crate::ops_api::api`]) and the peer endpoint ([`crate::peer_api::api`]). [`crate::openapi::document`] finishes it.
pub fn api() -> OpenApi {
    merged([
        routes::<sdx_store::AnyStore>().into_openapi(),
        document_route().into_openapi(),
        crate::notices_api::public_routes::<sdx_store::AnyStore>().into_openapi(),
        crate::ops_api::api(),
        crate::peer_api::api(),
    ])
}

async fn no_route(method: Method, uri: OriginalUri) -> ApiError {
    ApiError::no_route(&method, uri.path())
}

async fn wrong_method(method: Method, uri: OriginalUri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

/// Find the client of the bearer token and hand it to the handlers as a request extension ([`Caller`]).
async fn authenticate<S: Store>(State(st): State<Shared<S>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = token.and_then(|t| {
        let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
        // Constant-time comparison against every client, without stopping early.
        st.tokens.iter().fold(None, |found: Option<&Caller>, (k, c)| {
            let hit = aws_lc_rs::constant_time::verify_slices_are_equal(h.as_ref(), k).is_ok();
            found.or(hit.then_some(c))
        })
    });
    let Some(caller) = caller else {
        return ApiError::unauthorized().into_response();
    };
    req.extensions_mut().insert(caller.clone());
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(ApiError::unauthorized)
    }
}

/// The caller of an operators' route: a client that sees every case (403 `notPermitted` for one limited to its
/// own cases).
pub(crate) struct Operator(pub(crate) Caller);

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.scope == CaseScope::Own {
            let detail = format!("client {} sees its own cases only; this is for operators", caller.name);
            return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::NotPermitted, detail));
        }
        Ok(Operator(caller))
    }
}

/// A small JSON request body of the local API: an object with no members but `allowed` — 400 `malformed` when it
/// is no JSON, 400 `schemaViolation` for another shape or an unknown member; `what` names it in the detail.
pub(crate) fn small_object(body: &[u8], what: &str, allowed: &[&str]) -> ApiResult<serde_json::Map<String, Value>> {
    let bad = |d: String| ApiError::bad_request(ErrorCode::SchemaViolation, d);
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(ErrorCode::Malformed, format!("{what}: {e}")))?;
    let Value::Object(m) = v else { return Err(bad(format!("{what}: a JSON object ({})", allowed.join(", ")))) };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("{what}: unknown member `{k}`; allowed: {}", allowed.join(", "))));
    }
    Ok(m)
}

/// 403 for a case the caller does not own.
pub(crate) fn not_owner(id: CaseId) -> ApiError {
    let detail = format!("case {id} belongs to another ticket system of this organisation");
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::NotPermitted, detail)
}

/// Query parameters, refused as an [`ApiError`] (400 `schemaViolation`) when they do not deserialize, e.g. an
/// unknown parameter.
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// The one path parameter `{id}`, refused as an [`ApiError`].
pub(crate) struct PathId(String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(v) = axum::extract::Path::<String>::from_request_parts(parts, state).await?;
        Ok(PathId(v))
    }
}

impl PathId {
    pub(crate) fn case_id(&self) -> ApiResult<CaseId> {
        CaseId::parse(&self.0).map_err(|e| ApiError::bad_request(ErrorCode::InvalidIdentifier, e.to_string()))
    }

    pub(crate) fn item_id(&self) -> ApiResult<sdx_model::ItemId> {
        sdx_model::ItemId::parse(&self.0)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidIdentifier, e.to_string()))
    }

    fn message_id(&self) -> ApiResult<MessageId> {
        MessageId::parse(&self.0).map_err(|e| ApiError::bad_request(ErrorCode::InvalidIdentifier, e.to_string()))
    }
}

/// A JSON request body as bytes, for the codec's strict decoder: `Content-Type: application/json` (415
/// otherwise), at most the document size limit (413).
pub(crate) struct JsonBytes(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !json {
            return Err(ApiError::unsupported_media_type("application/json"));
        }
        Ok(JsonBytes(Bytes::from_request(req, state).await?))
    }
}

/// The optional `Idempotency-Key` header of a local change: 1 to 200 visible ASCII characters. A change sent
/// again with the same key is not applied again; the answer names the first one's message (and says
/// `Idempotent-Replayed: true`).
pub(crate) struct IdempotencyKey(Option<String>);

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyKey(None)) };
        let ok =
            !v.is_empty() && v.len() <= MAX_IDEMPOTENCY_KEY && v.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
        if !ok {
            let detail = format!("Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters");
            return Err(ApiError::bad_request(ErrorCode::SchemaViolation, detail));
        }
        Ok(IdempotencyKey(v.to_str().ok().map(str::to_string)))
    }
}

/// An answer to a local change, marked when it repeats an earlier one.
fn sent_answer(status: StatusCode, answer: Value, replayed: bool) -> Response {
    let mut r = (status, axum::Json(answer)).into_response();
    if replayed {
        r.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    r
}

/// The case id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documentation of the path parameter read by `PathId`
struct CaseIdParam {
    /// The case id (UUID, lowercase).
    #[param(value_type = apidoc::UuidDoc)]
    id: String,
}

/// The message id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documentation of the path parameter read by `PathId`
struct MessageIdParam {
    /// The message id of the dead letter (UUID, lowercase).
    #[param(value_type = apidoc::UuidDoc)]
    id: String,
}

/// Longest `waitForReceipt`, in seconds.
pub const MAX_WAIT_FOR_RECEIPT_S: u64 = 60;

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CreateParams {
    /// Answer only once the assignee's signed receipt is stored, or after this many seconds (0 to 60); the
    /// answer then says `delivered: true` or `false`. The forward is committed either way.
    #[param(minimum = 0, maximum = 60)]
    wait_for_receipt: Option<u64>,
}

/// The answer to a local change.
fn sent(s: crate::engine::Sent) -> Value {
    json!({"messageId": s.message_id, "case": s.case})
}

/// Create a case and forward it to its assignee.
///
/// The body is the body of a forward (`{"case": …, "note": …}`), checked like `sdx validate` checks a message.
#[utoipa::path(
    post,
    path = "/api/v1/cases",
    operation_id = "createCase",
    params(CreateParams, ("Idempotency-Key" = Option<String>, Header, description = "Apply this change once: a request repeated with the same key (1 to 200 visible ASCII characters, e.g. the ticket system's id of the change) is answered with the first one's message and not applied again (answer header Idempotent-Replayed: true).")),
    request_body(content = apidoc::CreateCaseDoc, content_type = "application/json"),
    responses(
        (status = 201, description = "Committed; the forward is in the outbox", body = apidoc::SentDoc),
        (status = 400, description = "Not an SDX document (errorCode of the first finding, e.g. malformed, duplicateKey, schemaViolation, tooDeep, unknownCode, invalidIdentifier, invalidTimestamp; JSON pointer in detail) or a bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not permitted (notPermitted): a node forwards the cases it originates", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The case exists already (inconsistentCase)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Breaks a rule beyond the schema (priorityMismatch, inconsistentCase, …) or the assignee is not a configured peer (wrongRecipient)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    Query(params): Query<CreateParams>,
    IdempotencyKey(key): IdempotencyKey,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let wait = match params.wait_for_receipt {
        Some(s) if s > MAX_WAIT_FOR_RECEIPT_S => {
            let detail = format!("waitForReceipt is at most {MAX_WAIT_FOR_RECEIPT_S} seconds, not {s}");
            return Err(ApiError::bad_request(ErrorCode::SchemaViolation, detail));
        }
        w => w,
    };
    // A case that names its assignee decodes at once; only one that does not is read as JSON and routed by the
    // directory, then decoded with the chosen assignee.
    let (forward, routed) = match sdx_codec::validate::validate_forward(&body) {
        Ok(f) => (f, None),
        Err(invalid) => match route_unassigned(&st.engine, &body)? {
            None => return Err(ApiError::invalid(invalid)),
            Some((routed_body, r)) => {
                (sdx_codec::validate::validate_forward(&routed_body).map_err(ApiError::invalid)?, Some(r))
            }
        },
    };
    let why = routed
        .as_ref()
        .map(|r| format!("to {} ({}), directory version {}: {}", r.org, r.name, r.directory_version, r.reason));
    let key = key.map(|k| caller.idempotency_key(&k));
    let owner = caller.restricted_to().map(str::to_string);
    let opts = crate::engine::Forwarding { key: key.as_deref(), routing: why, owner };
    let s = st.engine.forward_with(forward.case, forward.note, opts).await?;
    st.engine.feed_signal().notify_waiters();
    let (id, replayed) = (s.message_id, s.replayed);
    let mut answer = sent(s);
    if let Some(r) = routed {
        answer["routing"] =
            json!({"assignee": r.org, "name": r.name, "reason": r.reason, "directoryVersion": r.directory_version});
    }
    if let Some(secs) = wait {
        // The forward is committed either way; this only says whether the receipt is there yet.
        let delivered = st.engine.wait_delivered(id, std::time::Duration::from_secs(secs)).await?;
        answer["delivered"] = json!(delivered);
    }
    Ok(sent_answer(StatusCode::CREATED, answer, replayed))
}

/// A forward whose case names no `assignee`, routed by the directory: the body with the chosen organisation as
/// assignee (and as a party, if it is not one), and the routing. `None` when the case names its assignee or the
/// body is not a JSON object with a `case` object (the decoder says what is wrong with it then).
fn route_unassigned<S: Store>(
    engine: &crate::engine::Engine<S>,
    body: &[u8],
) -> ApiResult<Option<(Vec<u8>, crate::directory::Routed)>> {
    use sdx_directory::ServiceId;
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(body) else { return Ok(None) };
    let Some(Value::Object(case)) = doc.get_mut("case") else { return Ok(None) };
    if case.contains_key("assignee") {
        return Ok(None);
    }
    let Some(level) = case
        .get("supportLevel")
        .and_then(Value::as_str)
        .and_then(|c| <sdx_model::SupportLevel as sdx_model::Coded>::parse(c).ok())
    else {
        return Ok(None);
    };
    let service_ref = case.get("category").and_then(|c| c.get("service"));
    let service = service_ref
        .and_then(|s| s.get("leikaKey"))
        .and_then(Value::as_str)
        .and_then(|k| sdx_model::LeikaKey::parse(k).ok())
        .map(ServiceId::LeikaKey)
        .or_else(|| {
            service_ref
                .and_then(|s| s.get("ozgId"))
                .and_then(Value::as_str)
                .and_then(|k| sdx_model::OzgId::parse(k).ok())
                .map(ServiceId::OzgId)
        });
    let region = case.get("region").and_then(Value::as_str).and_then(|r| sdx_model::Ars::parse(r).ok());
    let routed = crate::directory::route(engine, service, region.as_ref(), level, &[])
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongRecipient, e.to_string()))?;
    case.insert("assignee".into(), json!(routed.org));
    let role = if level == sdx_model::SupportLevel::ThirdLevel { "vendor" } else { "bela" };
    let parties = case.entry("parties").or_insert_with(|| json!([]));
    if let Value::Array(list) = parties
        && !list.iter().any(|p| p.get("organisation").and_then(Value::as_str) == Some(routed.org.as_str()))
    {
        list.push(json!({"role": role, "organisation": routed.org, "name": routed.name}));
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| ApiError::internal("re-encoding the routed case", &e, false))?;
    Ok(Some((bytes, routed)))
}

/// Apply a change and send it to the partner.
///
/// The body is one message body — `{"update": {…}}`, `{"resolve": {…}}`, `{"handBack": {…}}`, `{"close": {…}}`,
/// `{"reopen": {…}}` or `{"reject": {…}}` — checked like `sdx validate` checks a message.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/changes",
    operation_id = "changeCase",
    params(CaseIdParam, ("Idempotency-Key" = Option<String>, Header, description = "Apply this change once: a request repeated with the same key (1 to 200 visible ASCII characters, e.g. the ticket system's id of the change) is answered with the first one's message and the case as it is now, and not applied again (answer header Idempotent-Replayed: true).")),
    request_body(content = apidoc::BodyDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "Committed; the message is in the outbox", body = apidoc::SentDoc),
        (status = 400, description = "Not an SDX message body (errorCode of the first finding; JSON pointer in detail) or an invalid case id (invalidIdentifier)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "This organisation may not make this change, or the case belongs to another of its ticket systems (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such case here (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The change contradicts the case (inconsistentCase, duplicateId)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Breaks a rule beyond the schema or the lifecycle (invalidTransition, solutionMissing, …)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable, e.g. the case changed meanwhile; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn change<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    id: PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let id = id.case_id()?;
    let body = sdx_codec::validate::validate_body(&body).map_err(ApiError::invalid)?;
    if matches!(body, sdx_model::Body::Forward(_) | sdx_model::Body::Receipt(_) | sdx_model::Body::ServiceNotice(_)) {
        let detail = format!(
            "/{}: not a change of a case; one of update, resolve, handBack, close, reopen, reject",
            body.message_type()
        );
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::MessageTypeMismatch, detail));
    }
    let key = key.map(|k| caller.idempotency_key(&k));
    let s = st.engine.change_as(id, body, key.as_deref(), caller.restricted_to()).await?;
    st.engine.feed_signal().notify_waiters();
    let replayed = s.replayed;
    Ok(sent_answer(StatusCode::OK, sent(s), replayed))
}

/// Why a `fields` value was refused.
#[derive(Debug, thiserror::Error)]
enum FieldsError {
    #[error("fields: name at least one member; allowed: {allowed}")]
    Empty { allowed: String },
    #[error("fields: empty entry; separate names by single commas; allowed: {allowed}")]
    EmptyEntry { allowed: String },
    #[error(
        "fields: `{name}` is a nested path, which is not supported; name top-level members of the view or of the \
         case (without `case.`); allowed: {allowed}"
    )]
    Nested { name: String, allowed: String },
    #[error("fields: unknown member `{name}`; allowed: {allowed} (case.caseId is always returned)")]
    Unknown { name: String, allowed: String },
}

/// What a request selected with `fields` (the whole view without it).
#[derive(Debug, PartialEq)]
struct Fields {
    /// Selected members of the view.
    view: Vec<&'static str>,
    /// Selected attributes of the case, returned inside `case` besides `caseId`; moot when `case` is selected.
    case: Vec<&'static str>,
}

impl Fields {
    /// Parse the `fields` parameter against the members the view has and the attributes of a case. A name that is
    /// both (`updatedAt`) selects both.
    fn parse(value: Option<&str>, members: &'static [&'static str]) -> Result<Self, FieldsError> {
        let Some(value) = value else { return Ok(Fields { view: members.to_vec(), case: Vec::new() }) };
        let list = || allowed_names(members);
        if value.trim().is_empty() {
            return Err(FieldsError::Empty { allowed: list() });
        }
        let mut fields = Fields { view: Vec::new(), case: Vec::new() };
        for name in value.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(FieldsError::EmptyEntry { allowed: list() });
            }
            let member = members.iter().copied().find(|m| *m == name);
            let attribute = case_attributes().find(|a| *a == name);
            if member.is_none() && attribute.is_none() {
                return Err(if name.contains('.') {
                    FieldsError::Nested { name: name.into(), allowed: list() }
                } else {
                    FieldsError::Unknown { name: name.into(), allowed: list() }
                });
            }
            for (selected, name) in [(&mut fields.view, member), (&mut fields.case, attribute)] {
                if let Some(name) = name
                    && !selected.contains(&name)
                {
                    selected.push(name);
                }
            }
        }
        Ok(fields)
    }

    fn has(&self, member: &str) -> bool {
        self.view.contains(&member)
    }
}

impl From<FieldsError> for ApiError {
    fn from(e: FieldsError) -> Self {
        ApiError::bad_request(ErrorCode::SchemaViolation, e.to_string())
    }
}

/// A case view with the selected members; `case.caseId` is always there. Without `case` selected, `case` holds
/// `caseId` and the selected case attributes the case has (an absent optional attribute stays absent).
fn view(rec: CaseRecord, timeline: Option<Vec<TimelineEvent>>, fields: &Fields) -> Value {
    let mut v = serde_json::Map::new();
    if fields.has("case") {
        v.insert("case".into(), json!(rec.case));
    } else if fields.case.is_empty() {
        v.insert("case".into(), json!({"caseId": rec.case.case_id}));
    } else {
        let mut case = match json!(rec.case) {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        case.retain(|k, _| k == "caseId" || fields.case.contains(&k.as_str()));
        v.insert("case".into(), Value::Object(case));
    }
    if fields.has("partner") {
        v.insert("partner".into(), json!(rec.partner));
    }
    if fields.has("ourRole") {
        v.insert("ourRole".into(), json!(rec.our_role));
    }
    if fields.has("updatedAt") {
        v.insert("updatedAt".into(), json!(rec.updated_at));
    }
    if let Some(owner) = rec.owner.filter(|_| fields.has("owner")) {
        v.insert("owner".into(), json!(owner));
    }
    if let Some(t) = timeline.filter(|_| fields.has("timeline")) {
        v.insert("timeline".into(), json!(t));
    }
    Value::Object(v)
}

/// The schema of `fields` on a view with these members: a comma-separated list of their names.
fn fields_schema(members: &'static [&'static str]) -> RefOr<Schema> {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let names = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(apidoc::field_names(members)));
    ArrayBuilder::new().min_items(Some(1)).items(names).into()
}

apidoc::inline_schema!(
    /// `fields` of a single case.
    ViewFields = fields_schema(VIEW_MEMBERS)
);
apidoc::inline_schema!(
    /// `fields` of a query.
    ItemFields = fields_schema(ITEM_MEMBERS)
);

/// Query parameters of `GET /cases/{id}`; others are refused, as on `GET /cases`.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GetParams {
    /// TMF621 attribute selection: comma-separated names, each a top-level member of the view (case, partner,
    /// ourRole, updatedAt, timeline) or a top-level attribute of the case (status, priority, …), returned
    /// inside `case` next to `caseId`, which is always returned. `updatedAt` selects both the view member and
    /// the case attribute; with `case` selected the whole case is returned. Names are exact and may repeat; an
    /// unknown name, a nested path (`a.b`), an empty entry or an empty list is refused with 400
    /// `schemaViolation`. Without `fields`, the full view.
    #[param(inline, value_type = Option<ViewFields>, style = Form, explode = false)]
    fields: Option<String>,
}

/// The case with its cross-organisation timeline.
#[utoipa::path(
    get,
    path = "/api/v1/cases/{id}",
    operation_id = "getCase",
    params(CaseIdParam, GetParams),
    responses(
        (status = 200, description = "The case view (with fields: only the selected members, and in case only caseId and the selected case attributes unless case is selected)", body = apidoc::CaseViewAnswerDoc),
        (status = 400, description = "Invalid case id (invalidIdentifier), unknown parameter or bad fields (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The case belongs to another ticket system of this organisation (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such case here (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_case<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    id: PathId,
    Query(p): Query<GetParams>,
) -> ApiResult<axum::Json<Value>> {
    let id = id.case_id()?;
    let fields = Fields::parse(p.fields.as_deref(), VIEW_MEMBERS)?;
    let store = st.engine.store();
    let rec = store
        .get_case(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("case {id}")))?;
    if !caller.may_see(rec.owner.as_deref()) {
        return Err(not_owner(id));
    }
    let timeline = if fields.has("timeline") { Some(store.timeline(id).await?) } else { None };
    Ok(axum::Json(view(rec, timeline, &fields)))
}

apidoc::inline_schema!(
    /// `status` of a query: a comma-separated list of status codes.
    StatusList = utoipa::openapi::schema::ArrayBuilder::new()
        .min_items(Some(1))
        .items(utoipa::openapi::Ref::from_schema_name("Code.Status"))
        .into()
);

/// What `Timestamp::parse` accepts, as a pattern: RFC 3339 with an offset, years 1970–9999, at most 40
/// characters. (Days 29–31 of the shorter months are left out of the pattern; the node refuses the impossible
/// ones with 400 `invalidTimestamp` and accepts 29 February in leap years.)
pub const TIMESTAMP_PARAM_PATTERN: &str = r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

apidoc::inline_schema!(
    /// A timestamp parameter.
    TimestampParam = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
        .pattern(Some(TIMESTAMP_PARAM_PATTERN))
        .max_length(Some(40))
        .into()
);

/// The form of a paging cursor: opaque, pass `nextCursor` unchanged; this is only what the node checks.
pub const CURSOR_PATTERN: &str = "^312e(3[0-9]){1,18}2e(3[0-9]|6[1-6]){8}2d(3[0-9]|6[1-6]){4}2d(3[0-9]|6[1-6]){4}2d(3[0-9]|6[1-6]){4}2d(3[0-9]|6[1-6]){12}$";

apidoc::inline_schema!(
    /// A paging cursor.
    CursorParam = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(CURSOR_PATTERN))
        .into()
);

#[derive(Deserialize, Default, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Any of these statuses (comma-separated codes).
    #[param(inline, value_type = Option<StatusList>, style = Form, explode = false)]
    status: Option<String>,
    /// Ticket type.
    #[param(value_type = Option<apidoc::TicketTypeDoc>)]
    ticket_type: Option<String>,
    /// Priority.
    #[param(value_type = Option<apidoc::PriorityDoc>)]
    priority: Option<String>,
    /// Affected service (LeiKa key).
    #[param(value_type = Option<apidoc::LeikaKeyDoc>)]
    leika_key: Option<String>,
    /// Region: the case's ARS starts with this ARS or prefix.
    #[param(value_type = Option<apidoc::ArsDoc>)]
    region: Option<String>,
    /// Partner organisation.
    #[param(value_type = Option<apidoc::OrgKeyDoc>)]
    partner: Option<String>,
    /// Changed at or after this time (RFC 3339 with offset, years 1970–9999).
    #[param(inline, value_type = Option<TimestampParam>)]
    updated_since: Option<String>,
    /// The `nextCursor` of the previous page, unchanged.
    #[param(inline, value_type = Option<CursorParam>)]
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// TMF621 attribute selection, as on `GET /api/v1/cases/{id}` without `timeline`.
    #[param(inline, value_type = Option<ItemFields>, style = Form, explode = false)]
    fields: Option<String>,
}

/// A refused query value: 400 with the code its parser gives (`[code] text`).
fn bad(e: impl std::fmt::Display) -> ApiError {
    let text = e.to_string();
    let code = text
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(c, _)| ErrorCode::parse(c).ok())
        .unwrap_or(ErrorCode::InvalidIdentifier);
    ApiError::bad_request(code, text)
}

/// Page size from `limit`: 1 to [`MAX_PAGE`], 100 without it.
fn page_size(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(ErrorCode::SchemaViolation, format!("limit is 1 to {MAX_PAGE}, not {n}"))),
    }
}

fn to_query(p: ListParams) -> ApiResult<(CaseQuery, Fields)> {
    let fields = Fields::parse(p.fields.as_deref(), ITEM_MEMBERS)?;
    let status = match p.status {
        Some(s) => s.split(',').map(|c| Status::parse(c.trim()).map_err(bad)).collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let query = CaseQuery {
        status,
        ticket_type: p.ticket_type.map(|t| sdx_model::TicketType::parse(&t)).transpose().map_err(bad)?,
        priority: p.priority.map(|t| sdx_model::Priority::parse(&t)).transpose().map_err(bad)?,
        leika_key: p.leika_key.map(LeikaKey::parse).transpose().map_err(bad)?,
        region_prefix: p.region.map(Ars::parse).transpose().map_err(bad)?,
        partner: p.partner.map(OrgKey::parse).transpose().map_err(bad)?,
        owner: None,
        updated_since: p.updated_since.map(|t| Timestamp::parse(&t)).transpose().map_err(bad)?,
        cursor: p.cursor,
        limit: page_size(p.limit)?,
    };
    Ok((query, fields))
}

/// Query cases (keyset paging, ordered by the time of this node's last change).
#[utoipa::path(
    get,
    path = "/api/v1/cases",
    operation_id = "listCases",
    params(ListParams),
    responses(
        (status = 200, description = "A page (with fields: each item holds only the selected members, and in case only caseId and the selected case attributes unless case is selected)", body = apidoc::CasePageDoc),
        (status = 400, description = "A bad parameter: unknown, empty, out of range, not on its codelist (unknownCode), not an identifier (invalidIdentifier), not a timestamp (invalidTimestamp), a malformed cursor or bad fields (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    let (mut query, fields) = to_query(p)?;
    query.owner = caller.restricted_to().map(str::to_string);
    let page = st.engine.store().query_cases(&query).await?;
    let items: Vec<_> = page.items.into_iter().map(|r| view(r, None, &fields)).collect();
    Ok(axum::Json(json!({"items": items, "nextCursor": page.next_cursor})))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveryParams {
    /// Only deliveries in this state.
    #[param(inline, value_type = Option<DeliveryStateParam>)]
    state: Option<String>,
    /// Most deliveries to return, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The states of a delivery, for the document.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // documentation of `DeliveryParams::state`
enum DeliveryStateParam {
    Pending,
    Delivered,
    Rejected,
    Dead,
    Skipped,
    Superseded,
}

/// The outbox by state.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    operation_id = "listDeliveries",
    params(DeliveryParams),
    responses(
        (status = 200, description = "Deliveries", body = apidoc::DeliveryPageDoc),
        (status = 400, description = "Unknown state (unknownCode), limit out of range or unknown parameter (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client sees its own cases only; this is for operators (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn deliveries<S: Store>(
    State(st): State<Shared<S>>,
    _op: Operator,
    Query(p): Query<DeliveryParams>,
) -> ApiResult<axum::Json<Value>> {
    let state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            let s: String = s.chars().take(40).collect();
            ApiError::bad_request(
                ErrorCode::UnknownCode,
                format!("state `{s}`: pending, delivered, rejected, dead, skipped or superseded"),
            )
        })?),
    };
    let items = st.engine.store().list_deliveries(state, page_size(p.limit)?).await?;
    Ok(axum::Json(json!({"items": items})))
}

/// Put a dead letter back into delivery.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/retry",
    operation_id = "retryDelivery",
    params(MessageIdParam),
    responses(
        (status = 200, description = "Pending again", body = apidoc::RetriedDoc),
        (status = 400, description = "Invalid message id (invalidIdentifier)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client sees its own cases only; this is for operators (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No dead letter with this id (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn retry<S: Store>(State(st): State<Shared<S>>, _op: Operator, id: PathId) -> ApiResult<axum::Json<Value>> {
    let id = id.message_id()?;
    if st.engine.retry_dead(id).await? {
        Ok(axum::Json(json!({"messageId": id, "state": "pending"})))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("no dead letter {id}")))
    }
}

/// Escalate a case this node works on to the next support level (1st → 2nd, 2nd → 3rd: its vendor).
///
/// A child case — this organisation's restatement of the case, without requester, journal or attachments,
/// `childOf` it — is forwarded to `to`, or to the directory's organisation for the case's service and region at the
/// next level; the case itself is updated (that level, the organisation a party, `parentOf` the child,
/// inProgress if it was new or acknowledged) and the update sent to its partner. From then on the case follows the
/// child's status (inProgress, pending, onHold, resolved with the vendor's solution), and closing it closes the
/// resolved child.
#[utoipa::path(
    post,
    path = "/api/v1/cases/{id}/escalations",
    operation_id = "escalateCase",
    params(CaseIdParam),
    request_body(content = apidoc::EscalateDoc, content_type = "application/json"),
    responses(
        (status = 201, description = "Committed: the child case's forward and the case's update are in the outbox", body = apidoc::EscalatedDoc),
        (status = 400, description = "A bad case id (invalidIdentifier) or body (schemaViolation, malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "This node does not work on the case, or it belongs to another ticket system of this organisation (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such case here (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The case changed meanwhile; retry", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not escalated: a resolved or ended case, or one at thirdLevel (invalidTransition), no vendor to be found or not a peer (wrongRecipient), the vendor's capabilities", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn escalate<S: Store>(
    State(st): State<Shared<S>>,
    caller: Caller,
    id: PathId,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Response> {
    let id = id.case_id()?;
    let bad = |d: String| ApiError::bad_request(ErrorCode::SchemaViolation, d);
    let m = small_object(&body, "escalation", &["to", "note"])?;
    let to = match m.get("to") {
        None => None,
        Some(Value::String(s)) => Some(
            OrgKey::parse(s.as_str())
                .map_err(|e| ApiError::bad_request(ErrorCode::InvalidIdentifier, format!("/to: {e}")))?,
        ),
        Some(_) => return Err(bad("/to: an organisation key".into())),
    };
    let note = match m.get("note") {
        None => None,
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= sdx_model::rules::limits::MAX_TEXT_CHARS =>
        {
            Some(s.clone())
        }
        Some(_) => return Err(bad("/note: a text of 1 to 65,536 characters".into())),
    };
    let e = st.engine.escalate(id, to, note, caller.restricted_to()).await?;
    st.engine.feed_signal().notify_waiters();
    let answer = json!({"child": sent(e.child), "parent": sent(e.parent), "reason": e.reason});
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// Give a case to one of this organisation's ticket systems (or to none): for operators.
///
/// The owner is an API client with `cases = "own"`; from now on only it (and the operators) see and change the
/// case, and its change feed shows the `ownerChanged` event, so its connector picks the case up. Nothing is sent
/// to the partner. `{"owner": null}` takes the case from its owner.
#[utoipa::path(
    put,
    path = "/api/v1/cases/{id}/owner",
    operation_id = "setCaseOwner",
    params(CaseIdParam),
    request_body(content = apidoc::OwnerDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "The case view with its owner now", body = apidoc::CaseViewAnswerDoc),
        (status = 400, description = "A bad case id (invalidIdentifier) or body (schemaViolation, malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client sees its own cases only; this is for operators (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such case here (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The owner is not an API client with cases = \"own\" (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable, e.g. the case changed meanwhile; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn set_owner<S: Store>(
    State(st): State<Shared<S>>,
    Operator(op): Operator,
    id: PathId,
    JsonBytes(body): JsonBytes,
) -> ApiResult<axum::Json<Value>> {
    let id = id.case_id()?;
    let bad = |d: String| ApiError::bad_request(ErrorCode::SchemaViolation, d);
    let m = small_object(&body, "owner", &["owner"])?;
    let owner = match m.get("owner") {
        Some(Value::Null) => None,
        Some(Value::String(name)) if st.owners.contains(name) => Some(name.clone()),
        Some(Value::String(name)) => {
            let name: String = name.chars().take(64).collect();
            let known = st.owners.join(", ");
            let detail = format!("/owner: {name:?} is not an API client with cases = \"own\" (these are: {known})");
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::SchemaViolation, detail));
        }
        _ => return Err(bad("/owner: the name of an API client, or null".into())),
    };
    let rec = st.engine.set_owner(id, owner, &op.name).await?;
    st.engine.feed_signal().notify_waiters();
    let all = Fields::parse(None, VIEW_MEMBERS)?;
    Ok(axum::Json(view(rec, None, &all)))
}

/// Give a dead letter up: its change is withdrawn from our copy of the case and the messages of the case that wait
/// behind it are renumbered and sent. A forward cannot be skipped (403 notPermitted): retry it.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/skip",
    operation_id = "skipDelivery",
    params(MessageIdParam),
    responses(
        (status = 200, description = "Skipped; the case is unblocked", body = apidoc::SkippedDoc),
        (status = 400, description = "Invalid message id (invalidIdentifier)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A forward cannot be skipped, or the client sees its own cases only and this is for operators (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No dead letter with this id (unknownCase)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn skip<S: Store>(State(st): State<Shared<S>>, _op: Operator, id: PathId) -> ApiResult<axum::Json<Value>> {
    let id = id.message_id()?;
    if st.engine.skip_dead(id).await? {
        Ok(axum::Json(json!({"messageId": id, "state": "skipped"})))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("no dead letter {id}")))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct BlockedParams {
    /// Most cases to return, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// Cases whose outgoing messages wait behind a dead letter (oldest first), with the dead letter and why it died.
#[utoipa::path(
    get,
    path = "/api/v1/blocked",
    operation_id = "listBlocked",
    params(BlockedParams),
    responses(
        (status = 200, description = "Blocked cases", body = apidoc::BlockedPageDoc),
        (status = 400, description = "limit out of range or unknown parameter (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The client sees its own cases only; this is for operators (notPermitted)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn blocked<S: Store>(
    State(st): State<Shared<S>>,
    _op: Operator,
    Query(p): Query<BlockedParams>,
) -> ApiResult<axum::Json<Value>> {
    let items = st.engine.store().list_blocked(page_size(p.limit)?).await?;
    Ok(axum::Json(json!({"items": items})))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of the node", body = apidoc::OpenApiDoc)),
    security(())
)]
async fn openapi(State(doc): State<Arc<Value>>) -> axum::Json<Value> {
    axum::Json(Value::clone(&doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdx_model as m;

    #[test]
    fn fields_parsing() {
        let parse = |v: Option<&str>| Fields::parse(v, ITEM_MEMBERS);
        let sel = |v: &str| {
            let f = parse(Some(v)).unwrap();
            (f.view, f.case)
        };
        assert_eq!(parse(None).unwrap(), Fields { view: ITEM_MEMBERS.to_vec(), case: vec![] });
        assert_eq!(sel(" partner ,ourRole,partner"), (vec!["partner", "ourRole"], vec![]));
        // Case attributes, duplicates once, caseId accepted (it is always returned anyway).
        assert_eq!(
            sel("status, priority,partner,status,caseId"),
            (vec!["partner"], vec!["status", "priority", "caseId"])
        );
        // updatedAt is a view member and a case attribute: it selects both.
        assert_eq!(sel("updatedAt"), (vec!["updatedAt"], vec!["updatedAt"]));
        assert_eq!(sel("case,requester"), (vec!["case"], vec!["requester"]));
        assert!(matches!(parse(Some("")), Err(FieldsError::Empty { .. })));
        assert!(matches!(parse(Some(" \t")), Err(FieldsError::Empty { .. })));
        for v in [",", ",case", "case,", "case,,partner", "case, ,partner", "status,"] {
            assert!(matches!(parse(Some(v)), Err(FieldsError::EmptyEntry { .. })), "{v}");
        }
        for v in ["case.caseId", "case.status", "category.symptom", "status.x"] {
            assert!(matches!(parse(Some(v)), Err(FieldsError::Nested { .. })), "{v}");
        }
        let allowed = "allowed: view members case, partner, ourRole, updatedAt, owner; case attributes caseId, revision, \
                       references, ticketType, status, pendingReason, statusHistory, impact, urgency, priority, \
                       category, region, supportLevel, channel, parties, originator, assignee, requester, subject, \
                       description, createdAt, updatedAt, journal, attachments, solution, relatedCases, serviceLevel \
                       (case.caseId is always returned)";
        for v in ["timeline", "Case", "Status", "case_id", "ticket_type", "\0", "\u{202e}ä", "case;partner", "id"] {
            let e = parse(Some(v)).err().unwrap();
            assert!(matches!(e, FieldsError::Unknown { .. }), "{v}");
            assert!(e.to_string().ends_with(allowed), "{e}");
        }
        assert_eq!(Fields::parse(Some("timeline"), VIEW_MEMBERS).unwrap().view, ["timeline"]);
    }

    /// The case attributes come from the format description; they are exactly the members of a serialized case
    /// with every optional member set, so a member added to or removed from `sdx_model::Case` fails here (and in
    /// `crates/codec/tests/lockstep.rs`).
    #[test]
    fn case_attributes_are_the_members_of_a_serialized_case() {
        let m::Body::Forward(forward) = m::sample::typical_forward().body else { panic!("a forward") };
        let at = m::Timestamp::parse("2026-11-28T10:00:00+01:00").unwrap();
        let by = m::OrgKey::parse(m::sample::BELA).unwrap();
        let full = m::Case {
            pending_reason: Some(m::PendingReason::WaitingForVendor),
            attachments: vec![m::Attachment {
                id: m::ItemId::parse("0b9c6e1a-4d2f-4a7b-8c3e-5f6a7b8c9dff").unwrap(),
                file_name: "log.txt".into(),
                media_type: m::MediaType::parse("text/plain").unwrap(),
                size: 1,
                sha256: m::Sha256Hex::parse("0".repeat(64)).unwrap(),
                content: None,
                uri: None,
                added_by: by.clone(),
                added_at: at,
            }],
            solution: Some(m::Solution {
                code: m::ResolutionCode::Fixed,
                text: "done".into(),
                resolved_at: at,
                resolved_by: by,
            }),
            related_cases: vec![m::RelatedCase {
                case_id: m::CaseId::new_random(),
                relation: m::RelationType::RelatedTo,
            }],
            ..forward.case
        };
        let mut serialized: Vec<String> = json!(full).as_object().unwrap().keys().cloned().collect();
        serialized.sort_unstable();
        let mut attributes: Vec<&str> = case_attributes().collect();
        attributes.sort_unstable();
        assert_eq!(serialized, attributes);
    }
}
