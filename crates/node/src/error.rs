//! The one error type of every HTTP surface of the node, [`ApiError`], and its rendering as
//! `application/problem+json` (RFC 9457).
//!
//! # Error policy
//!
//! - **One type, one rendering.** Every answer that is not a success — from the local API, the peer endpoint
//!   (`/sdx/v1/messages`, each item of `/sdx/v1/batch`, `/sdx/v1/noop`), a refused extractor (body, query, path),
//!   a missing token (401), an unknown route (404) or a wrong method (405) — is an [`ApiError`] and renders as
//!   the same [`Problem`]: `type` `urn:xoev-de:sdx:problem:<code>`, `title` (the code's description from the
//!   `errorCode` codelist), `status`, `detail`, `errorCode` (the stable SDX code) and `retryable`.
//! - **This module chooses HTTP statuses; nothing else does.** The engine and the codec speak SDX error codes
//!   and typed errors ([`EngineError`], [`sdx_store::Error`], [`sdx_codec::validate::Invalid`]); the mappings
//!   to statuses are here, one function each:
//!   format findings → 400 (413 for a document over the size limit), rule findings → 422,
//!   engine refusals → [`refusal_status`], peer problems → [`peer_problem_status`].
//! - **Retryable means the same request may succeed later**: exactly the 5xx and 429 answers. A sending node
//!   dead-letters a non-retryable answer at once and retries a retryable one with backoff. Hence an optimistic
//!   concurrency conflict (someone else changed the case meanwhile) is `503` with `Retry-After`, not `409`;
//!   `409` is a permanent contradiction (the case exists already).
//! - **Expected refusals are not logged as errors; internal failures are.** A store, crypto or other internal
//!   failure is logged once here at `error` level (the error's text names ids and codes only — the store redacts
//!   credentials, and no error type of the node carries a requester's personal data) and answered with a
//!   generic detail: `503` when it is transient (the store says so), else `500`. Its text never reaches the
//!   client.
//! - **Details name what is wrong and where** (a JSON pointer, a parameter name, the allowed values), never
//!   personal data beyond a short excerpt of the offending value (the codec's and the model's messages clip).
//!
//! New [`EngineError`] variants fail to compile in `From<EngineError>` until they are given a status here.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sdx_codec::Diagnostic;
use sdx_codec::validate::Invalid;
use sdx_model::{Coded, ErrorCode};
use serde::Serialize;

use crate::engine::EngineError;

/// Media type of every error answer.
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

/// Prefix of a problem's `type` URI; the SDX error code follows.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:xoev-de:sdx:problem:";

/// Result of a handler: a success or an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// An error answer of an HTTP surface. Build it with the constructors or by conversion (`?`) from the typed
/// errors below it; it renders itself as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    detail: String,
}

/// The body of every error answer (RFC 9457 with the SDX members `errorCode` and `retryable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(description = "Problem details (RFC 9457) with the stable SDX error code.")]
pub struct Problem {
    /// `urn:xoev-de:sdx:problem:<errorCode>`.
    #[serde(rename = "type")]
    #[schema(pattern = "^urn:xoev-de:sdx:problem:[a-zA-Z]+$")]
    pub type_: String,
    /// The error code's description (codelist `errorCode`).
    pub title: String,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What is wrong and where; no personal data.
    pub detail: String,
    /// Stable SDX error code (codelist `errorCode`).
    #[schema(schema_with = error_code_schema)]
    pub error_code: String,
    /// Whether the same request may succeed later (5xx and 429); a sending node retries only these.
    pub retryable: bool,
}

fn error_code_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::Ref::from_schema_name("Code.ErrorCode").into()
}

impl ApiError {
    /// An error with this status, code and detail.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into() }
    }

    /// 400 with this code: the request does not fit the API (format, parameter, identifier).
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401 `unknownSender`: no valid bearer token (with `WWW-Authenticate: Bearer`).
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::UnknownSender, "a valid bearer token is required")
    }

    /// 403 `unknownSender`: an authenticated organisation that is not a configured peer.
    pub fn not_a_peer(org: &sdx_model::OrgKey) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::UnknownSender, format!("{org} is not a configured peer"))
    }

    /// 404 `schemaViolation`: no route for this path.
    pub fn no_route(method: &axum::http::Method, path: &str) -> Self {
        let path: String = path.chars().take(200).collect();
        Self::new(StatusCode::NOT_FOUND, ErrorCode::SchemaViolation, format!("no resource {method} {path}"))
    }

    /// 405 `schemaViolation`: the path exists, the method does not (axum adds the `Allow` header).
    pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> Self {
        let path: String = path.chars().take(200).collect();
        Self::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::SchemaViolation, format!("{path} does not allow {method}"))
    }

    /// 415 `malformed`: the body is not of the media type the operation takes.
    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Malformed,
            format!("the body must be {expected} (Content-Type)"),
        )
    }

    /// A document that does not decode (400; 413 if it is over the size limit) or breaks a rule (422), with the
    /// first finding's code and every finding, located, in the detail.
    pub fn invalid(e: Invalid) -> Self {
        let (status, found) = match e {
            Invalid::Format(d) => {
                let too_large = d.first().is_some_and(|d| d.code == ErrorCode::TooLarge && d.pointer.is_none());
                (if too_large { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST }, d)
            }
            Invalid::Rules(d) => (StatusCode::UNPROCESSABLE_ENTITY, d),
        };
        let code = found.first().map_or(ErrorCode::SchemaViolation, |d| d.code);
        Self::new(status, code, findings(&found))
    }

    /// A problem the engine reports for a message it cannot answer with a receipt (see [`peer_problem_status`]).
    pub fn peer_problem(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(peer_problem_status(code), code, detail)
    }

    /// An internal failure: logged here (`what` failed, with the error's text, which names no personal data),
    /// answered with a generic detail; 503 if `transient`, else 500.
    pub fn internal(what: &'static str, error: &dyn std::fmt::Display, transient: bool) -> Self {
        tracing::error!(error = %error, transient, "{what} failed");
        if transient {
            Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, "temporarily unavailable; retry")
        } else {
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error; see the node's log")
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The SDX error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Whether the same request may succeed later: 5xx and 429.
    pub fn retryable(&self) -> bool {
        self.status.is_server_error() || self.status == StatusCode::TOO_MANY_REQUESTS
    }

    /// The body of the answer.
    pub fn problem(&self) -> Problem {
        let code = self.code.code();
        Problem {
            type_: format!("{PROBLEM_TYPE_PREFIX}{code}"),
            title: self.code.entry().description.to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            error_code: code.to_string(),
            retryable: self.retryable(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&self.problem()).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_MEDIA_TYPE));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

/// Findings as one detail: each with its code and location, `; `-separated.
fn findings(found: &[Diagnostic]) -> String {
    let shown: Vec<String> = found.iter().take(10).map(Diagnostic::to_string).collect();
    let more = found.len().saturating_sub(shown.len());
    if more > 0 { format!("{} (and {more} more)", shown.join("; ")) } else { shown.join("; ") }
}

/// The status of an engine refusal (a local change the lifecycle or the rules do not allow).
pub fn refusal_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotPermitted => StatusCode::FORBIDDEN,
        ErrorCode::UnknownCase => StatusCode::NOT_FOUND,
        ErrorCode::InconsistentCase | ErrorCode::DuplicateId => StatusCode::CONFLICT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The status of a problem the engine reports for a received message it cannot answer with a receipt: the
/// sender is not a configured peer (403), too large (413), the receiver failed (503), else the message is
/// unusable as sent (400).
pub fn peer_problem_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::UnknownSender => StatusCode::FORBIDDEN,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused(r) => Self::new(refusal_status(r.code), r.code, r.message),
            EngineError::NotFound(id) => {
                Self::new(StatusCode::NOT_FOUND, ErrorCode::UnknownCase, format!("case {id} is not known here"))
            }
            EngineError::UnknownNotice(id) => Self::new(
                StatusCode::NOT_FOUND,
                ErrorCode::SchemaViolation,
                format!("this node never published a notice {id}"),
            ),
            EngineError::UnknownPeer(org) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::WrongRecipient,
                format!("no peer {org} is configured"),
            ),
            EngineError::Conflict => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Internal, "the case changed meanwhile; retry")
            }
            EngineError::Store(e) => e.into(),
            EngineError::Crypto(e) => Self::internal("signing", &e, false),
        }
    }
}

impl From<sdx_store::Error> for ApiError {
    fn from(e: sdx_store::Error) -> Self {
        match e {
            sdx_store::Error::Invalid(m) => Self::bad_request(ErrorCode::SchemaViolation, m),
            sdx_store::Error::Conflict => EngineError::Conflict.into(),
            other => {
                let transient = other.is_transient();
                Self::internal("storage", &other, transient)
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(ErrorCode::SchemaViolation, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request(ErrorCode::InvalidIdentifier, r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, r.body_text())
        } else {
            Self::bad_request(ErrorCode::Malformed, r.body_text())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::unsupported_media_type("application/json"),
            JsonRejection::BytesRejection(b) => b.into(),
            other => Self::bad_request(ErrorCode::Malformed, other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_is_exactly_5xx_and_429() {
        for (status, retryable) in [(400, false), (401, false), (404, false), (409, false), (422, false), (429, true)]
            .into_iter()
            .chain([(500, true), (503, true)])
        {
            let e = ApiError::new(StatusCode::from_u16(status).unwrap(), ErrorCode::Internal, "x");
            assert_eq!(e.retryable(), retryable, "{status}");
            assert_eq!(e.problem().retryable, retryable, "{status}");
        }
    }

    #[test]
    fn a_problem_names_its_code_in_type_title_and_error_code() {
        let p = ApiError::bad_request(ErrorCode::UnknownCode, "status `x`").problem();
        assert_eq!(p.type_, "urn:xoev-de:sdx:problem:unknownCode");
        assert_eq!(p.error_code, "unknownCode");
        assert_eq!(p.title, "Value not on its codelist");
        assert_eq!((p.status, p.retryable), (400, false));
        let v = serde_json::to_value(&p).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["detail", "errorCode", "retryable", "status", "title", "type"]);
    }

    #[test]
    fn engine_errors_get_their_statuses_here() {
        use sdx_model::lifecycle::Refusal;
        let refused = |code| ApiError::from(EngineError::Refused(Refusal { code, message: "m".into() })).status();
        assert_eq!(refused(ErrorCode::NotPermitted), StatusCode::FORBIDDEN);
        assert_eq!(refused(ErrorCode::InconsistentCase), StatusCode::CONFLICT);
        assert_eq!(refused(ErrorCode::PriorityMismatch), StatusCode::UNPROCESSABLE_ENTITY);
        let conflict = ApiError::from(EngineError::Conflict);
        assert_eq!((conflict.status(), conflict.retryable()), (StatusCode::SERVICE_UNAVAILABLE, true));
        let r = conflict.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_MEDIA_TYPE);
        let internal = ApiError::from(sdx_store::Error::Corrupt("row 7".into()));
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.detail().contains("row 7"), "internal details stay in the log");
        assert_eq!(peer_problem_status(ErrorCode::UnknownSender), StatusCode::FORBIDDEN);
        assert_eq!(peer_problem_status(ErrorCode::SignatureInvalid), StatusCode::BAD_REQUEST);
    }
}
