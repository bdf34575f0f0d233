//! The SDX node as a connector sees it: its local API over HTTP with a bearer token — create and change cases
//! (with idempotency keys), read a case, follow the change feed, and keep state in the node's store with
//! compare-and-set. The connector uses nothing else, so it works the same inside `sdx serve` and alone.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use sdx_model::{Body, Case, CaseId};

use crate::secret::Secret;

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Not reachable, timed out, or a retryable answer (5xx, 429): try again later.
    #[error("the SDX node is unavailable: {0}")]
    Unavailable(String),
    /// The node refused the request (4xx): `code` is the SDX error code of its problem answer.
    #[error("the SDX node refused ({status} {code}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// SDX error code (`notPermitted`, `invalidTransition`, …).
        code: String,
        /// The node's explanation.
        detail: String,
    },
    /// An answer the client does not understand.
    #[error("the SDX node answered unexpectedly: {0}")]
    Protocol(String),
}

impl NodeError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, NodeError::Unavailable(_))
    }

    /// The SDX error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            NodeError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A case as the node holds it.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// The case.
    pub case: Case,
    /// `originator`, `assignee` or `both`.
    pub our_role: String,
}

/// One event of the change feed.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Its position in the feed (unique).
    pub cursor: String,
    /// The case.
    pub case_id: CaseId,
    /// `messageSent`, `messageReceived`, `conflict`, …
    pub kind: String,
    /// What happened (no personal data).
    pub detail: String,
}

/// A state value with its version.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version (for compare-and-set).
    pub version: u64,
}

/// A client of one node's local API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    /// `http://127.0.0.1:8080/api/v1`
    base: String,
    token: Secret,
    connector: String,
}

impl NodeClient {
    /// A client of the local API at `base` (ending in `/api/v1`) for connector `connector`.
    pub fn new(base: &str, token: Secret, connector: &str) -> Result<Self, NodeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| NodeError::Protocol(format!("HTTP client: {e}")))?;
        Ok(NodeClient { http, base: base.trim_end_matches('/').to_string(), token, connector: connector.into() })
    }

    async fn send(&self, rq: reqwest::RequestBuilder) -> Result<(u16, Value), NodeError> {
        let r = rq.bearer_auth(self.token.expose()).send().await.map_err(|e| NodeError::Unavailable(e.to_string()))?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| NodeError::Unavailable(e.to_string()))?;
        let v: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if (200..300).contains(&status) || status == 404 {
            return Ok((status, v));
        }
        let detail = v["detail"].as_str().unwrap_or("").to_string();
        if status >= 500 || status == 429 || v["retryable"] == json!(true) {
            return Err(NodeError::Unavailable(format!("{status}: {detail}")));
        }
        Err(NodeError::Refused { status, code: v["errorCode"].as_str().unwrap_or("").to_string(), detail })
    }

    fn parse<T: DeserializeOwned>(v: Value, what: &str) -> Result<T, NodeError> {
        serde_json::from_value(v).map_err(|e| NodeError::Protocol(format!("{what}: {e}")))
    }

    fn not_found(status: u16, v: &Value) -> Result<(), NodeError> {
        if status == 404 {
            let detail = v["detail"].as_str().unwrap_or("not found").to_string();
            return Err(NodeError::Refused { status, code: v["errorCode"].as_str().unwrap_or("").into(), detail });
        }
        Ok(())
    }

    /// Create a case and forward it to its assignee, once per `key`. Returns the case as stored.
    pub async fn create_case(&self, case: &Case, note: Option<&str>, key: &str) -> Result<Case, NodeError> {
        let body = json!({"case": case, "note": note});
        let rq = self.http.post(format!("{}/cases", self.base)).header("Idempotency-Key", key).json(&body);
        let (status, v) = self.send(rq).await?;
        Self::not_found(status, &v)?;
        Self::parse(v["case"].clone(), "case")
    }

    /// Apply a change to a case and send it to the partner, once per `key`. Returns the case as it is now.
    pub async fn change(&self, case: CaseId, body: &Body, key: &str) -> Result<Case, NodeError> {
        let rq =
            self.http.post(format!("{}/cases/{case}/changes", self.base)).header("Idempotency-Key", key).json(body);
        let (status, v) = self.send(rq).await?;
        Self::not_found(status, &v)?;
        Self::parse(v["case"].clone(), "case")
    }

    /// The case, if the node has it.
    pub async fn case(&self, id: CaseId) -> Result<Option<CaseView>, NodeError> {
        let rq = self.http.get(format!("{}/cases/{id}?fields=case,ourRole", self.base));
        let (status, v) = self.send(rq).await?;
        if status == 404 {
            return Ok(None);
        }
        let case = Self::parse(v["case"].clone(), "case")?;
        let our_role = v["ourRole"].as_str().unwrap_or_default().to_string();
        Ok(Some(CaseView { case, our_role }))
    }

    /// The events after `after` (from the beginning with `None`), waiting up to `wait` for one; and the cursor
    /// to continue from.
    pub async fn events(&self, after: Option<&str>, wait: Duration) -> Result<(Vec<FeedEvent>, String), NodeError> {
        let mut q = vec![("wait", wait.as_secs().min(60).to_string()), ("limit", "500".to_string())];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        let (_, v) = self.send(self.http.get(format!("{}/events", self.base)).query(&q)).await?;
        let next = v["next"].as_str().ok_or_else(|| NodeError::Protocol("events without next".into()))?.to_string();
        let mut out = Vec::new();
        for e in v["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let case_id = e["caseId"]
                .as_str()
                .and_then(|s| CaseId::parse(s).ok())
                .ok_or_else(|| NodeError::Protocol("event without caseId".into()))?;
            out.push(FeedEvent {
                cursor: e["cursor"].as_str().unwrap_or_default().to_string(),
                case_id,
                kind: e["kind"].as_str().unwrap_or_default().to_string(),
                detail: e["detail"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok((out, next))
    }

    /// Record a problem in the case's timeline (`reported`; not sent to the partner).
    pub async fn report(&self, case: CaseId, detail: &str) -> Result<(), NodeError> {
        let detail: String = detail.chars().take(500).collect();
        let rq = self.http.post(format!("{}/cases/{case}/reports", self.base)).json(&json!({"detail": detail}));
        let (status, v) = self.send(rq).await?;
        Self::not_found(status, &v)
    }

    fn state_url(&self, key: &str) -> String {
        format!("{}/connectors/{}/state/{key}", self.base, self.connector)
    }

    /// A state value of this connector.
    pub async fn state<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, NodeError> {
        let (status, v) = self.send(self.http.get(self.state_url(key))).await?;
        if status == 404 {
            return Ok(None);
        }
        let version = v["version"].as_u64().ok_or_else(|| NodeError::Protocol("state without version".into()))?;
        Ok(Some(Versioned { value: Self::parse(v["value"].clone(), key)?, version }))
    }

    /// Write a state value if its version is `expected` (0: new; `None`: whatever it is); `Ok(None)` when the
    /// version differs (read again and retry). Returns the new version.
    pub async fn put_state<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expected: Option<u64>,
    ) -> Result<Option<u64>, NodeError> {
        let body = json!({"value": value, "expectedVersion": expected});
        match self.send(self.http.put(self.state_url(key)).json(&body)).await {
            Ok((status, v)) => {
                Self::not_found(status, &v)?;
                Ok(Some(v["version"].as_u64().ok_or_else(|| NodeError::Protocol("no version".into()))?))
            }
            Err(NodeError::Refused { status: 409, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
