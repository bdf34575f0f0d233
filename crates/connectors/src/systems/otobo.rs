//! OTOBO 11 (and the OTRS 6 line: Znuny, OTRS) through its GenericInterface: a REST web service, named `SDX`
//! on the test system, that offers the ticket operations (`scripts/ticketsystems/otobo-start.sh` imports it).
//!
//! # How it is reached
//! [`Config::url`] is the web service's base, `http://HOST/otobo/nph-genericinterface.pl/Webservice/SDX`. The
//! connector logs in as an agent with `POST /Session {"UserLogin","Password"}` and sends the `SessionID` in the
//! JSON body of every call — never in a URL, which OTOBO writes to its error log; reads are `POST` too (the
//! web service routes allow it). When OTOBO answers a call with `….AuthFail` (the
//! session expired: `SessionMaxIdleTime` is 2 hours by default) it logs in again once and repeats the call.
//! A refused login is [`SystemError::Auth`].
//!
//! | call | route | operation |
//! |---|---|---|
//! | create | `POST /Ticket` with `Ticket`, the first `Article`, `DynamicField` | `Ticket::TicketCreate` |
//! | update, comment | `PATCH /Ticket/:id` with `Ticket` / `DynamicField` / `Article` + `Attachment` | `Ticket::TicketUpdate` |
//! | get, download | `POST /Ticket/:id {"AllArticles":1,"Attachments":1,"DynamicFields":1,…}` | `Ticket::TicketGet` |
//! | updated_at | `POST /TicketHistory/:id` | `Ticket::TicketHistoryGet` |
//! | changed_since, find_by_field | `POST /TicketSearch` | `Ticket::TicketSearch` |
//! | vocabulary | `POST /Vocabulary` | `SDX::VocabularyGet` (installed by the start script) |
//!
//! # Gotchas handled here
//! - **Business errors come as HTTP 200** with `{"Error":{"ErrorCode","ErrorMessage"}}`; a refused login is
//!   `SessionCreate.AuthFail`, a missing or invisible ticket `TicketGet.AccessDenied`. Only an unknown route
//!   gives HTTP 500 (plain text), and so does a request above `WebMaxFileUpload` (500 with an empty body).
//!   Every write is read back and compared ([`SystemError::Refused`] when the read-back differs).
//! - **Ids are strings or numbers** depending on the operation (create: strings, update: `ArticleID` number,
//!   get: numbers, search: strings and `{}` for nothing); lists of one can come as an object, empty lists as
//!   `null`. The parser accepts all of these.
//! - **OTOBO trims** every scalar it receives (title, body, dynamic field values) and turns CRLF into LF in
//!   article bodies; the title is cut to 191 characters without an error. The connector sends text normalised
//!   the same way (so a read-back compares equal and a marker line comes back verbatim) and refuses a longer
//!   title with [`SystemError::TooLarge`]. An article needs a non-empty body: an empty description or comment
//!   text is sent as `-`.
//! - **Pending states need a pending time**: `TicketUpdate` refuses a `pending …` state without `PendingTime`
//!   — after it has already changed queue and type. Every state change therefore carries
//!   `PendingTime {Diff: 10080}` (now + 7 days), which OTOBO uses for pending states only and ignores for the
//!   others; the state is only sent when it differs from the current one (so an existing pending time stays).
//!   OTOBO has no state workflow of its own: every valid state (also `merged`, `removed`) can be set by an agent
//!   with `rw` on the queue; only unknown or invalid names are refused (checked before anything is written).
//! - **A search on an unknown dynamic field is ignored** (it returns every ticket) and `Equals` on a text field
//!   is case-insensitive: [`TicketSystem::find_by_field`] reads the candidates' fields back, compares exactly,
//!   and answers [`SystemError::Refused`] for a field the tickets do not have.
//! - **Changes**: `TicketChangeTimeNewerDate` searches the ticket history (`>=`, seconds, OTOBO time zone = UTC),
//!   so a new article counts as a change; the search has no paging, so a full result is split into time windows.
//!   `updated_at` is the latest of the ticket's `Changed`, its history and its articles.
//! - **Files**: OTOBO takes at most `WebMaxFileUpload` bytes (48,000,000 by default) per request; files travel
//!   base64-encoded in the JSON, so all files of one comment may have at most 3/4 of it less 1 MiB for text and
//!   JSON ([`Config::max_file_bytes`], default 34,951,424 bytes). Larger files are refused before anything is
//!   written (OTOBO itself would answer an empty HTTP 500). `TicketGet` cannot fetch one article's
//!   attachments: [`TicketSystem::download`] asks for the shortest run of articles from either end that
//!   contains the file. Files on the first public article (the description) are not listed: the trait has no
//!   place for them.
//! - **Keep-alive**: starman, OTOBO's PSGI server, closes an idle connection after 1 s; a request written on
//!   such a pooled connection fails with a broken pipe. Idle connections are kept for 500 ms only.
//! - Article visibility: `IsVisibleForCustomer` 1 = public (written on channel Phone, so no mail is sent),
//!   0 = internal note (channel Internal). Deleted articles (`IsDeleted`) are left out. The description is the
//!   first public article; every other article is a comment.
//! - A ticket needs a customer: without a requester e-mail the ticket gets `sdx-no-requester@localhost`, read
//!   back as no e-mail. With `Ticket::Type` on, it needs a type too: without one the ticket gets
//!   `Ticket::Type::Default`. Without a priority it gets `3 normal`.
//!
//! Nothing of a ticket's content is logged; `tracing::debug!` shows routes, ids and error codes only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio::sync::Mutex;

use crate::secret::Secret;
use crate::system::{
    Comment, Contact, FileInfo, NewComment, NewTicket, SystemError, SystemResult, Ticket, TicketChange, TicketId,
    TicketSystem, Vocabulary,
};

const SYSTEM: &str = "otobo";
/// `WebMaxFileUpload` of a default OTOBO 11: the largest request body it takes.
const DEFAULT_WEB_MAX_FILE_UPLOAD: u64 = 48_000_000;
/// What is left for text and JSON in a request besides the base64 of the files.
const REQUEST_OVERHEAD: u64 = 1_048_576;
/// The default of [`Config::max_file_bytes`]: 3/4 of `WebMaxFileUpload` (48,000,000) less 1 MiB for text and JSON.
pub const DEFAULT_MAX_FILE_BYTES: u64 = DEFAULT_WEB_MAX_FILE_UPLOAD / 4 * 3 - REQUEST_OVERHEAD;
/// `ticket.title` is `VARCHAR(191)`; OTOBO cuts longer titles silently.
const MAX_TITLE_CHARS: usize = 191;
/// `article_data_mime.a_body` is `VARCHAR(1800000)`.
const MAX_BODY_CHARS: usize = 1_800_000;
/// The pending time given with every state change (minutes): now + 7 days.
const PENDING_MINUTES: u64 = 7 * 24 * 60;
/// The customer of a ticket created without a requester e-mail (OTOBO requires one).
const NO_REQUESTER: &str = "sdx-no-requester@localhost";
/// Text sent for an empty description or comment (OTOBO requires a body).
const EMPTY_BODY: &str = "-";
/// Tickets per search request; a full answer is split into smaller time windows.
const SEARCH_LIMIT: usize = 5000;
/// Candidates read back by [`TicketSystem::find_by_field`].
const FIND_CANDIDATES: usize = 20;
const CONTENT_TYPE_TEXT: &str = "text/plain; charset=utf8";

fn default_case_field() -> String {
    "SDXCase".to_string()
}

/// How to reach OTOBO.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The REST web service's base URL, e.g.
    /// `http://127.0.0.1:8580/otobo/nph-genericinterface.pl/Webservice/SDX`.
    pub url: String,
    /// The agent the connector logs in as (needs `rw` on the queues it works in).
    pub user: String,
    /// The agent's password.
    pub password: Secret,
    /// The ticket dynamic field that holds the SDX case id (default `SDXCase`).
    #[serde(default = "default_case_field")]
    pub case_field: String,
    /// Largest file, and largest sum of the files of one comment, in bytes (default
    /// [`DEFAULT_MAX_FILE_BYTES`], derived from OTOBO's default `WebMaxFileUpload` of 48,000,000 bytes).
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
}

/// An OTOBO client: a cheap to clone handle on one HTTP client and one agent session.
#[derive(Clone)]
pub struct Otobo {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    base: String,
    http: reqwest::Client,
    session: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    current: Option<(Secret, u64)>,
    next_generation: u64,
}

impl fmt::Debug for Otobo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otobo")
            .field("url", &self.inner.base)
            .field("user", &self.inner.config.user)
            .field("case_field", &self.inner.config.case_field)
            .finish_non_exhaustive()
    }
}

/// A business error OTOBO answered with HTTP 200.
#[derive(Debug)]
struct Biz {
    code: String,
    message: String,
}

impl fmt::Display for Biz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Post,
    Patch,
}

fn unavailable(detail: impl Into<String>) -> SystemError {
    SystemError::Unavailable { system: SYSTEM, detail: detail.into() }
}
fn protocol(detail: impl Into<String>) -> SystemError {
    SystemError::Protocol { system: SYSTEM, detail: detail.into() }
}
fn refused(detail: impl Into<String>) -> SystemError {
    SystemError::Refused { system: SYSTEM, detail: detail.into() }
}
fn not_found(id: &str) -> SystemError {
    SystemError::NotFound { system: SYSTEM, id: id.to_string() }
}
fn too_large(what: impl Into<String>, size: u64, limit: u64) -> SystemError {
    SystemError::TooLarge { system: SYSTEM, what: what.into(), size, limit }
}

impl Otobo {
    /// A client (no request is made yet).
    pub fn new(config: Config) -> SystemResult<Self> {
        let base = config.url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(protocol(format!("url must start with http:// or https://, not {base:?}")));
        }
        if config.user.is_empty() {
            return Err(SystemError::Auth { system: SYSTEM, detail: "no user configured".into() });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            // Starman (OTOBO's PSGI server) closes idle keep-alive connections after 1 s; a pooled connection
            // it closed fails with a broken pipe when the next request is written. Use idle ones only briefly.
            .pool_idle_timeout(Duration::from_millis(500))
            .build()
            .map_err(|e| protocol(format!("HTTP client: {e}")))?;
        Ok(Otobo { inner: Arc::new(Inner { config, base, http, session: Mutex::new(SessionState::default()) }) })
    }

    /// The file limit enforced before writing.
    fn max_file_bytes(&self) -> u64 {
        self.inner.config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES)
    }

    /// The largest request the file limit allows: base64 of the files plus the room for text and JSON.
    fn request_limit(&self) -> u64 {
        self.max_file_bytes().saturating_add(REQUEST_OVERHEAD) / 3 * 4
    }

    /// One HTTP exchange; HTTP and transport failures mapped, the JSON answer returned as it is.
    async fn send(&self, method: Method, path: &str, body: Vec<u8>) -> SystemResult<Value> {
        let url = format!("{}{}", self.inner.base, path);
        let http = &self.inner.http;
        let req = match method {
            Method::Post => http.post(&url),
            Method::Patch => http.patch(&url),
        };
        let body_len = body.len() as u64;
        let req = req.header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8").body(body);
        let resp = req.send().await.map_err(|e| unavailable(format!("{method:?} {path}: {}", chain(e))))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| unavailable(format!("{method:?} {path}: {}", chain(e))))?;
        tracing::debug!(system = SYSTEM, ?method, path, status = status.as_u16(), "answer");
        if status.is_server_error() {
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("Error while determine Operation") {
                return Err(protocol(format!("the web service has no route {method:?} {path}")));
            }
            if status.as_u16() == 500 && bytes.is_empty() && body_len > REQUEST_OVERHEAD {
                // What OTOBO answers to a request above its WebMaxFileUpload (lower than configured here).
                return Err(too_large("request", body_len, self.request_limit()));
            }
            return Err(unavailable(format!("{method:?} {path}: HTTP {status}")));
        }
        match status.as_u16() {
            401 | 403 => {
                return Err(SystemError::Auth { system: SYSTEM, detail: format!("{method:?} {path}: HTTP {status}") });
            }
            413 => return Err(too_large("request", body_len, self.request_limit())),
            408 | 429 => return Err(unavailable(format!("{method:?} {path}: HTTP {status}"))),
            _ if !status.is_success() => return Err(protocol(format!("{method:?} {path}: HTTP {status}"))),
            _ => {}
        }
        serde_json::from_slice(&bytes).map_err(|e| protocol(format!("{method:?} {path}: not JSON ({e})")))
    }

    /// Log in: a new session id.
    async fn login(&self) -> SystemResult<Secret> {
        let body = json!({
            "UserLogin": self.inner.config.user,
            "Password": self.inner.config.password.expose(),
        });
        let body = serde_json::to_vec(&body).map_err(|e| protocol(e.to_string()))?;
        let v = match self.send(Method::Post, "/Session", body).await {
            Err(SystemError::Protocol { detail, .. }) if detail.contains("no route") => {
                return Err(SystemError::Auth { system: SYSTEM, detail });
            }
            other => other?,
        };
        if let Some(b) = business_error(&v) {
            tracing::debug!(system = SYSTEM, code = %b.code, "login refused");
            return Err(SystemError::Auth { system: SYSTEM, detail: b.to_string() });
        }
        match v.get("SessionID").and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Ok(Secret::new(s)),
            _ => Err(protocol("POST /Session: no SessionID in the answer")),
        }
    }

    /// The current session (logging in when there is none) and its generation.
    async fn session(&self) -> SystemResult<(Secret, u64)> {
        let mut state = self.inner.session.lock().await;
        if let Some((sid, generation)) = &state.current {
            return Ok((sid.clone(), *generation));
        }
        // The lock is held while logging in: concurrent callers wait for this one login.
        let sid = self.login().await?;
        let generation = state.next_generation;
        state.next_generation += 1;
        state.current = Some((sid.clone(), generation));
        Ok((sid, generation))
    }

    /// Forget the session of `generation` (it was refused), unless another call already replaced it.
    async fn drop_session(&self, generation: u64) {
        let mut state = self.inner.session.lock().await;
        if matches!(&state.current, Some((_, g)) if *g == generation) {
            state.current = None;
        }
    }

    /// A call with the session (in the JSON body, never in the URL): `Ok(Ok(answer))`, or
    /// `Ok(Err(business error))`. Logs in again once when the session was refused.
    async fn call(&self, method: Method, path: &str, mut body: Map<String, Value>) -> SystemResult<Result<Value, Biz>> {
        let mut retried = false;
        loop {
            let (sid, generation) = self.session().await?;
            body.insert("SessionID".into(), Value::String(sid.expose().to_string()));
            let bytes = serde_json::to_vec(&body).map_err(|e| protocol(e.to_string()))?;
            let v = self.send(method, path, bytes).await?;
            match business_error(&v) {
                Some(b) if b.code.ends_with(".AuthFail") => {
                    self.drop_session(generation).await;
                    if retried {
                        return Err(SystemError::Auth { system: SYSTEM, detail: b.to_string() });
                    }
                    tracing::debug!(system = SYSTEM, code = %b.code, "session refused, logging in again");
                    retried = true;
                }
                Some(b) => {
                    tracing::debug!(system = SYSTEM, ?method, path, code = %b.code, "business error");
                    return Ok(Err(b));
                }
                None => return Ok(Ok(v)),
            }
        }
    }

    /// `TicketGet` of one ticket (`POST /Ticket/:id` with `params`); `NotFound` for a missing or invisible one.
    async fn ticket_get(&self, id: &str, params: Value) -> SystemResult<Value> {
        let path = format!("/Ticket/{id}");
        let params = match params {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        match self.call(Method::Post, &path, params).await? {
            Ok(v) => {
                let ticket = list(v.get("Ticket")).into_iter().next().cloned();
                ticket.ok_or_else(|| protocol(format!("TicketGet {path}: no Ticket in the answer")))
            }
            Err(b) if b.code.ends_with(".AccessDenied") || b.code.ends_with(".NotValidTicketID") => Err(not_found(id)),
            Err(b) => Err(protocol(format!("TicketGet {path}: {b}"))),
        }
    }

    /// The latest `CreateTime` in the ticket's history.
    async fn history_latest(&self, id: &str) -> SystemResult<Option<OffsetDateTime>> {
        let path = format!("/TicketHistory/{id}");
        let v = match self.call(Method::Post, &path, Map::new()).await? {
            Ok(v) => v,
            Err(b) if b.code.ends_with(".AccessDenied") || b.code.ends_with(".NotValidTicketID") => {
                return Err(not_found(id));
            }
            Err(b) => return Err(protocol(format!("TicketHistoryGet {path}: {b}"))),
        };
        let mut latest = None;
        for entry in list(v.get("TicketHistory")) {
            for h in list(entry.get("History")) {
                if let Some(t) = h.get("CreateTime").and_then(Value::as_str).and_then(parse_time) {
                    latest = latest.max(Some(t));
                }
            }
        }
        Ok(latest)
    }

    /// `Ticket::Type::Default` (from `/Vocabulary`), else the first valid type.
    async fn default_type(&self) -> SystemResult<String> {
        let v = match self.call(Method::Post, "/Vocabulary", Map::new()).await? {
            Ok(v) => v,
            Err(b) => return Err(protocol(format!("VocabularyGet: {b}"))),
        };
        text(&v, "TypeDefault")
            .or_else(|| list(v.get("Types")).into_iter().find_map(id_string))
            .ok_or_else(|| refused("OTOBO requires a ticket type and has none"))
    }

    /// `TicketSearch` with `params`: the ticket ids.
    async fn search(&self, params: Map<String, Value>) -> SystemResult<Vec<String>> {
        match self.call(Method::Post, "/TicketSearch", params).await? {
            Ok(v) => Ok(list(v.get("TicketID")).into_iter().filter_map(id_string).collect()),
            Err(b) => Err(refused(format!("TicketSearch: {b}"))),
        }
    }

    /// `TicketUpdate`; business errors are `Refused` (`NotFound` when the ticket is not visible).
    async fn ticket_update(&self, id: &str, body: Map<String, Value>) -> SystemResult<Value> {
        let path = format!("/Ticket/{id}");
        match self.call(Method::Patch, &path, body).await? {
            Ok(v) => Ok(v),
            Err(b) if b.message.contains("does not have access to the ticket") => Err(not_found(id)),
            Err(b) => Err(refused(format!("TicketUpdate: {b}"))),
        }
    }
}

/// A transport error with its causes, without the URL (its query may hold the session id).
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `{"Error":{…}}` of an answer.
fn business_error(v: &Value) -> Option<Biz> {
    let e = v.get("Error")?;
    let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    Some(Biz { code: text("ErrorCode"), message: text("ErrorMessage") })
}

/// A JSON list that OTOBO may send as an array, a single object, a scalar, or `null`.
fn list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    }
}

/// An id sent as a string or a number.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string field; `None` for null, missing or empty.
fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `YYYY-MM-DD HH:MM:SS` (OTOBO's time zone, UTC).
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s.trim(), f).ok().map(PrimitiveDateTime::assume_utc)
}

fn format_time(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(UtcOffset::UTC).format(f).unwrap_or_default()
}

/// Text as OTOBO stores it: CRLF as LF (`MIMEBase::ArticleCreate`), surrounding whitespace trimmed
/// (`TicketCreate`/`TicketUpdate` trim every scalar).
fn normalize_text(s: &str) -> String {
    s.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\n\r", "\n").trim().to_string()
}

/// A ticket id as OTOBO has them (digits); anything else cannot exist.
fn check_id(id: &str) -> SystemResult<&str> {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found(id));
    }
    Ok(id)
}

/// A dynamic field name as OTOBO allows them.
fn check_field_name(name: &str) -> SystemResult<()> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(refused(format!("{name:?} is not an OTOBO dynamic field name (letters, digits, -)")));
    }
    Ok(())
}

/// `"Name" <address>` with the name quoted and escaped.
fn from_header(name: Option<&str>, email: &str) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => {
            let n: String = n.chars().filter(|c| !c.is_control()).collect();
            format!("\"{}\" <{email}>", n.replace('\\', "\\\\").replace('"', "\\\""))
        }
        None => email.to_string(),
    }
}

/// Name and address of a `From` header (`"Name" <a@b>`, `Name <a@b>`, `a@b`, or a bare name).
fn parse_from(from: &str) -> (Option<String>, Option<String>) {
    let from = from.trim();
    if let (Some(open), true) = (from.rfind('<'), from.ends_with('>')) {
        let addr = from[open + 1..from.len() - 1].trim();
        let mut name = from[..open].trim().to_string();
        if name.len() >= 2 && name.starts_with('"') && name.ends_with('"') {
            let inner = &name[1..name.len() - 1];
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            name = out;
        }
        let name = Some(name).filter(|n| !n.is_empty());
        let addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        return (name, addr);
    }
    if from.contains('@') && !from.contains(' ') {
        return (None, Some(from.to_string()));
    }
    (Some(from.to_string()).filter(|n| !n.is_empty()), None)
}

/// A dynamic field value as text (`None` for no value).
fn field_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(field_value).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        _ => None,
    }
}

/// The subject of an article: the first line of the text that is not an SDX marker, shortened.
fn subject_for(text: &str, fallback: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("[sdx:"));
    let s: String = line.unwrap_or(fallback).chars().take(100).collect();
    if s.trim().is_empty() { fallback.to_string() } else { s }
}

/// One article of a `TicketGet` answer.
struct Article {
    id: String,
    public: bool,
    from: Option<String>,
    sender_type: Option<String>,
    created_at: Option<OffsetDateTime>,
    body: String,
    files: Vec<FileInfo>,
}

fn parse_article(a: &Value) -> SystemResult<Option<Article>> {
    let id = a.get("ArticleID").and_then(id_string).ok_or_else(|| protocol("article without ArticleID"))?;
    if int(a.get("IsDeleted")).unwrap_or(0) != 0 {
        return Ok(None);
    }
    let mut files = Vec::new();
    for f in list(a.get("Attachment")) {
        let Some(file_id) = f.get("FileID").and_then(id_string) else { continue };
        files.push(FileInfo {
            id: format!("{id}/{file_id}"),
            name: text(f, "Filename").unwrap_or_default(),
            media_type: text(f, "ContentType").unwrap_or_else(|| "application/octet-stream".into()),
            size: int(f.get("FilesizeRaw")).unwrap_or(0),
        });
    }
    Ok(Some(Article {
        public: int(a.get("IsVisibleForCustomer")).unwrap_or(0) == 1,
        from: text(a, "From"),
        sender_type: text(a, "SenderType"),
        created_at: a.get("CreateTime").and_then(Value::as_str).and_then(parse_time),
        body: a.get("Body").and_then(Value::as_str).unwrap_or_default().replace("\r\n", "\n"),
        files,
        id,
    }))
}

/// A `TicketGet` ticket (with articles, attachment metadata and dynamic fields) as a [`Ticket`];
/// `updated_at` here is the latest of `Changed` and the articles (the caller adds the history).
fn parse_ticket(t: &Value) -> SystemResult<Ticket> {
    let id = t.get("TicketID").and_then(id_string).ok_or_else(|| protocol("ticket without TicketID"))?;
    let created_at = t
        .get("Created")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .ok_or_else(|| protocol(format!("ticket {id}: no Created")))?;
    let changed = t.get("Changed").and_then(Value::as_str).and_then(parse_time).unwrap_or(created_at);

    let mut fields = BTreeMap::new();
    for f in list(t.get("DynamicField")) {
        if let (Some(name), Some(value)) = (text(f, "Name"), f.get("Value").and_then(field_value)) {
            fields.insert(name, value);
        }
    }

    let mut articles = Vec::new();
    for a in list(t.get("Article")) {
        if let Some(a) = parse_article(a)? {
            articles.push(a);
        }
    }
    let updated_at = articles.iter().filter_map(|a| a.created_at).fold(changed, OffsetDateTime::max);

    let requester = text(t, "CustomerUserID").and_then(|cu| requester(&cu, &articles));

    let first_public = articles.iter().position(|a| a.public);
    let description = first_public.map(|i| articles[i].body.clone()).unwrap_or_default();
    let comments = articles
        .into_iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != first_public)
        .map(|(_, a)| Comment {
            author: a.from.as_deref().map(parse_from).and_then(|(n, addr)| n.or(addr)).or(a.sender_type),
            created_at: a.created_at.unwrap_or(created_at),
            id: a.id,
            public: a.public,
            text: a.body,
            files: a.files,
        })
        .collect();

    Ok(Ticket {
        number: text(t, "TicketNumber").unwrap_or_else(|| id.clone()),
        title: text(t, "Title").unwrap_or_default(),
        description,
        status: text(t, "State").ok_or_else(|| protocol(format!("ticket {id}: no State")))?,
        priority: text(t, "Priority"),
        queue: text(t, "Queue"),
        kind: text(t, "Type"),
        requester,
        fields,
        created_at,
        updated_at,
        comments,
        id,
    })
}

/// The requester of a ticket with customer `cu` (an e-mail address, or the login of a registered customer user):
/// the address, and the name from the first article written from it.
fn requester(cu: &str, articles: &[Article]) -> Option<Contact> {
    let froms: Vec<(Option<String>, Option<String>)> =
        articles.iter().filter_map(|a| a.from.as_deref().map(parse_from)).collect();
    let address = if cu.contains('@') {
        Some(cu.to_string())
    } else {
        // A customer login: the address of the first article a customer wrote.
        articles
            .iter()
            .zip(&froms)
            .find(|(a, _)| a.sender_type.as_deref() == Some("customer"))
            .and_then(|(_, (_, addr))| addr.clone())
    };
    let name = address.as_deref().and_then(|address| {
        froms
            .iter()
            .find(|(_, addr)| addr.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(address)))
            .and_then(|(n, _)| n.clone())
    });
    let email = address.filter(|a| a != NO_REQUESTER);
    (name.is_some() || email.is_some()).then_some(Contact { name, email })
}

/// What the read-back shows differently from what was asked (`what: asked → shown`).
fn mismatches(
    ticket: &Ticket,
    status: Option<&str>,
    priority: Option<&str>,
    queue: Option<&str>,
    kind: Option<&str>,
    fields: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, asked: Option<&str>, shown: Option<&str>| {
        if let Some(asked) = asked
            && Some(asked.trim()) != shown
        {
            out.push(format!("{what} {asked:?} (shows {shown:?})"));
        }
    };
    check("status", status, Some(ticket.status.as_str()));
    check("priority", priority, ticket.priority.as_deref());
    check("queue", queue, ticket.queue.as_deref());
    check("type", kind, ticket.kind.as_deref());
    for (name, value) in fields {
        let asked = value.trim();
        let shown = ticket.fields.get(name).map(String::as_str);
        let ok = if asked.is_empty() { shown.is_none() } else { shown == Some(asked) };
        if !ok {
            out.push(format!("field {name} (shows {})", if shown.is_some() { "another value" } else { "none" }));
        }
    }
    out
}

fn dynamic_fields(fields: &BTreeMap<String, String>) -> SystemResult<Vec<Value>> {
    let mut out = Vec::new();
    for (name, value) in fields {
        check_field_name(name)?;
        out.push(json!({ "Name": name, "Value": value.trim() }));
    }
    Ok(out)
}

impl TicketSystem for Otobo {
    fn kind(&self) -> &'static str {
        SYSTEM
    }

    async fn changed_since(&self, since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        // Windows [from, to] (to = None: open end); a full answer is split in two.
        let mut windows = vec![(since.to_offset(UtcOffset::UTC), None::<OffsetDateTime>)];
        let mut ids = BTreeSet::new();
        while let Some((from, to)) = windows.pop() {
            let mut params = Map::new();
            params.insert("TicketChangeTimeNewerDate".into(), json!(format_time(from)));
            if let Some(to) = to {
                params.insert("TicketChangeTimeOlderDate".into(), json!(format_time(to)));
            }
            params.insert("Limit".into(), json!(SEARCH_LIMIT));
            params.insert("SortBy".into(), json!("Age"));
            params.insert("OrderBy".into(), json!("Up"));
            let found = self.search(params).await?;
            tracing::debug!(system = SYSTEM, count = found.len(), "changed since");
            if found.len() < SEARCH_LIMIT {
                ids.extend(found);
                continue;
            }
            let end = to.unwrap_or_else(OffsetDateTime::now_utc);
            let span = end - from;
            if span <= time::Duration::seconds(1) {
                return Err(protocol(format!(
                    "more than {SEARCH_LIMIT} tickets changed between {} and {}",
                    format_time(from),
                    format_time(end)
                )));
            }
            let mid = from + span / 2;
            windows.push((from, Some(mid)));
            windows.push((mid, to));
        }
        Ok(ids.into_iter().collect())
    }

    async fn get(&self, id: &str) -> SystemResult<Ticket> {
        let id = check_id(id)?;
        let raw = self
            .ticket_get(
                id,
                json!({ "AllArticles": 1, "Attachments": 1, "GetAttachmentContents": 0, "DynamicFields": 1 }),
            )
            .await?;
        let mut ticket = parse_ticket(&raw)?;
        if let Some(latest) = self.history_latest(id).await? {
            ticket.updated_at = ticket.updated_at.max(latest);
        }
        Ok(ticket)
    }

    async fn find_by_field(&self, field: &str, value: &str) -> SystemResult<Option<TicketId>> {
        check_field_name(field)?;
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let mut params = Map::new();
        params.insert(format!("DynamicField_{field}"), json!({ "Equals": value }));
        params.insert("Limit".into(), json!(FIND_CANDIDATES));
        params.insert("SortBy".into(), json!("Age"));
        params.insert("OrderBy".into(), json!("Up")); // Age = create_time, Up = ascending: oldest first
        let found = self.search(params).await?;
        // OTOBO ignores a search on an unknown field (answering every ticket) and compares text
        // case-insensitively: read the candidates' fields back (TicketGet lists every ticket field, also empty).
        for id in found {
            let raw = match self.ticket_get(&id, json!({ "DynamicFields": 1 })).await {
                Ok(raw) => raw,
                Err(SystemError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let entry = list(raw.get("DynamicField")).into_iter().find(|f| text(f, "Name").as_deref() == Some(field));
            let Some(entry) = entry else {
                return Err(refused(format!("OTOBO has no ticket dynamic field {field}")));
            };
            if entry.get("Value").and_then(field_value).as_deref() == Some(value) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    async fn create(&self, ticket: &NewTicket) -> SystemResult<TicketId> {
        let title = normalize_text(&ticket.title).replace('\n', " ");
        let title_chars = title.chars().count();
        if title_chars > MAX_TITLE_CHARS {
            return Err(too_large("title", title_chars as u64, MAX_TITLE_CHARS as u64));
        }
        if title.is_empty() {
            return Err(refused("OTOBO needs a title"));
        }
        let body = normalize_text(&ticket.description);
        let body_chars = body.chars().count();
        if body_chars > MAX_BODY_CHARS {
            return Err(too_large("description", body_chars as u64, MAX_BODY_CHARS as u64));
        }
        let body = if body.is_empty() { EMPTY_BODY.to_string() } else { body };

        let requester = ticket.requester.as_ref();
        let email = requester.and_then(|r| r.email.as_deref()).map(str::trim).filter(|e| !e.is_empty());
        let customer = email.unwrap_or(NO_REQUESTER);
        let name = requester.and_then(|r| r.name.as_deref());

        let mut t = Map::new();
        t.insert("Title".into(), json!(title));
        t.insert("Queue".into(), json!(ticket.queue.trim()));
        t.insert("State".into(), json!(ticket.status.trim()));
        t.insert("PendingTime".into(), json!({ "Diff": PENDING_MINUTES }));
        t.insert("Priority".into(), json!(ticket.priority.as_deref().map_or("3 normal", str::trim)));
        if let Some(kind) = &ticket.kind {
            t.insert("Type".into(), json!(kind.trim()));
        }
        t.insert("CustomerUser".into(), json!(customer));
        let article = json!({
            "CommunicationChannel": "Phone",
            "SenderType": if requester.is_some() { "customer" } else { "agent" },
            "IsVisibleForCustomer": 1,
            "From": from_header(name, customer),
            "Subject": title,
            "Body": body,
            "ContentType": CONTENT_TYPE_TEXT,
        });
        let mut req = Map::new();
        req.insert("Ticket".into(), Value::Object(t));
        req.insert("Article".into(), article);
        let dfs = dynamic_fields(&ticket.fields)?;
        if !dfs.is_empty() {
            req.insert("DynamicField".into(), Value::Array(dfs));
        }

        let answer = match self.call(Method::Post, "/Ticket", req.clone()).await? {
            Ok(v) => v,
            // With `Ticket::Type` on, OTOBO requires a type (checked before anything is written): take the
            // system's default type (`Ticket::Type::Default`).
            Err(b) if ticket.kind.is_none() && b.message.contains("Type parameter is required") => {
                let kind = self.default_type().await?;
                if let Some(Value::Object(t)) = req.get_mut("Ticket") {
                    t.insert("Type".into(), json!(kind));
                }
                match self.call(Method::Post, "/Ticket", req).await? {
                    Ok(v) => v,
                    Err(b) => return Err(refused(format!("TicketCreate: {b}"))),
                }
            }
            Err(b) => return Err(refused(format!("TicketCreate: {b}"))),
        };
        let id = answer
            .get("TicketID")
            .and_then(id_string)
            .ok_or_else(|| protocol("TicketCreate: no TicketID in the answer"))?;
        tracing::debug!(system = SYSTEM, ticket = %id, "created");

        let back = self.get(&id).await?;
        let wrong = mismatches(
            &back,
            Some(&ticket.status),
            ticket.priority.as_deref(),
            Some(&ticket.queue),
            ticket.kind.as_deref(),
            &ticket.fields,
        );
        if !wrong.is_empty() {
            return Err(refused(format!("ticket {id} was created without {}", wrong.join(", "))));
        }
        Ok(id)
    }

    async fn update(&self, id: &str, change: &TicketChange) -> SystemResult<()> {
        let id = check_id(id)?;
        let before = self.get(id).await?;
        if change.is_empty() {
            return Ok(());
        }
        let mut t = Map::new();
        if let Some(status) = change.status.as_deref().map(str::trim)
            && status != before.status
        {
            t.insert("State".into(), json!(status));
            // Required for pending states (else OTOBO refuses after changing queue and type), ignored otherwise.
            t.insert("PendingTime".into(), json!({ "Diff": PENDING_MINUTES }));
        }
        if let Some(p) = change.priority.as_deref().map(str::trim)
            && Some(p) != before.priority.as_deref()
        {
            t.insert("Priority".into(), json!(p));
        }
        if let Some(q) = change.queue.as_deref().map(str::trim)
            && Some(q) != before.queue.as_deref()
        {
            t.insert("Queue".into(), json!(q));
        }
        if let Some(k) = change.kind.as_deref().map(str::trim)
            && Some(k) != before.kind.as_deref()
        {
            t.insert("Type".into(), json!(k));
        }
        let changed_fields: BTreeMap<String, String> = change
            .fields
            .iter()
            .filter(|(name, value)| {
                let asked = value.trim();
                let shown = before.fields.get(*name).map(String::as_str);
                if asked.is_empty() { shown.is_some() } else { shown != Some(asked) }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let dfs = dynamic_fields(&changed_fields)?;
        if t.is_empty() && dfs.is_empty() {
            return Ok(());
        }
        let mut req = Map::new();
        if !t.is_empty() {
            req.insert("Ticket".into(), Value::Object(t));
        }
        if !dfs.is_empty() {
            req.insert("DynamicField".into(), Value::Array(dfs));
        }
        self.ticket_update(id, req).await?;
        tracing::debug!(system = SYSTEM, ticket = %id, "updated");

        let back = self.get(id).await?;
        let wrong = mismatches(
            &back,
            change.status.as_deref(),
            change.priority.as_deref(),
            change.queue.as_deref(),
            change.kind.as_deref(),
            &change.fields,
        );
        if !wrong.is_empty() {
            return Err(refused(format!("ticket {id} does not show {}", wrong.join(", "))));
        }
        Ok(())
    }

    async fn comment(&self, id: &str, comment: &NewComment) -> SystemResult<String> {
        let id = check_id(id)?;
        // Limits first: nothing is written when a file is too large.
        let limit = self.max_file_bytes();
        let mut total: u64 = 0;
        for f in &comment.files {
            let size = f.content.len() as u64;
            if size > limit {
                return Err(too_large(format!("file {}", f.name), size, limit));
            }
            total += size;
        }
        if total > limit {
            return Err(too_large(format!("the {} files of one comment", comment.files.len()), total, limit));
        }
        let text = normalize_text(&comment.text);
        let chars = text.chars().count();
        if chars > MAX_BODY_CHARS {
            return Err(too_large("comment text", chars as u64, MAX_BODY_CHARS as u64));
        }
        let body = if text.is_empty() { EMPTY_BODY.to_string() } else { text };

        let mut req = Map::new();
        req.insert(
            "Article".into(),
            json!({
                "CommunicationChannel": if comment.public { "Phone" } else { "Internal" },
                "SenderType": "agent",
                "IsVisibleForCustomer": if comment.public { 1 } else { 0 },
                "Subject": subject_for(&body, if comment.public { "Reply" } else { "Note" }),
                "Body": body,
                "ContentType": CONTENT_TYPE_TEXT,
            }),
        );
        if !comment.files.is_empty() {
            let b64 = base64::engine::general_purpose::STANDARD;
            let files: Vec<Value> = comment
                .files
                .iter()
                .map(|f| {
                    json!({
                        "Content": b64.encode(&f.content),
                        "ContentType": if f.media_type.trim().is_empty() { "application/octet-stream" } else { f.media_type.trim() },
                        "Filename": f.name,
                    })
                })
                .collect();
            req.insert("Attachment".into(), Value::Array(files));
        }
        let answer = self.ticket_update(id, req).await?;
        let article_id = answer
            .get("ArticleID")
            .and_then(id_string)
            .ok_or_else(|| protocol("TicketUpdate: no ArticleID in the answer"))?;
        tracing::debug!(system = SYSTEM, ticket = %id, article = %article_id, "commented");

        let back = self.get(id).await?;
        let Some(c) = back.comments.iter().find(|c| c.id == article_id) else {
            return Err(refused(format!("ticket {id} does not show article {article_id}")));
        };
        if c.text != body || c.public != comment.public {
            return Err(refused(format!("article {article_id} of ticket {id} differs from what was written")));
        }
        let mut asked: Vec<u64> = comment.files.iter().map(|f| f.content.len() as u64).collect();
        let mut shown: Vec<u64> = c.files.iter().map(|f| f.size).collect();
        asked.sort_unstable();
        shown.sort_unstable();
        if asked != shown {
            return Err(refused(format!(
                "article {article_id} of ticket {id} has {} files, {} were sent",
                shown.len(),
                asked.len()
            )));
        }
        Ok(article_id)
    }

    async fn download(&self, id: &str, file: &FileInfo) -> SystemResult<Vec<u8>> {
        let id = check_id(id)?;
        let missing = || not_found(&format!("{id} (file {})", file.id));
        let (article_id, file_id) = file.id.split_once('/').ok_or_else(missing)?;
        // TicketGet cannot select one article: find its position, then ask for the shorter run of articles
        // from the start (ASC) or from the end (DESC) that contains it.
        let meta = self.ticket_get(id, json!({ "AllArticles": 1 })).await?;
        let ids: Vec<String> =
            list(meta.get("Article")).into_iter().filter_map(|a| a.get("ArticleID").and_then(id_string)).collect();
        let pos = ids.iter().position(|a| a == article_id).ok_or_else(missing)?;
        let (order, count) = if pos < ids.len() - pos { ("ASC", pos + 1) } else { ("DESC", ids.len() - pos) };
        let raw = self
            .ticket_get(
                id,
                json!({
                    "AllArticles": 1,
                    "Attachments": 1,
                    "GetAttachmentContents": 1,
                    "ArticleOrder": order,
                    "ArticleLimit": count,
                }),
            )
            .await?;
        let article = list(raw.get("Article"))
            .into_iter()
            .find(|a| a.get("ArticleID").and_then(id_string).as_deref() == Some(article_id))
            .ok_or_else(missing)?;
        let attachment = list(article.get("Attachment"))
            .into_iter()
            .find(|f| f.get("FileID").and_then(id_string).as_deref() == Some(file_id))
            .ok_or_else(missing)?;
        let content = attachment.get("Content").and_then(Value::as_str).unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .map_err(|e| protocol(format!("file {} of ticket {id}: content is not base64 ({e})", file.id)))?;
        if let Some(size) = int(attachment.get("FilesizeRaw"))
            && size != bytes.len() as u64
        {
            return Err(protocol(format!(
                "file {} of ticket {id}: {} bytes, OTOBO lists {size}",
                file.id,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        let v = match self.call(Method::Post, "/Vocabulary", Map::new()).await? {
            Ok(v) => v,
            Err(b) => return Err(protocol(format!("VocabularyGet: {b}"))),
        };
        let names = |key: &str| -> Vec<String> {
            list(v.get(key))
                .into_iter()
                .filter_map(|x| match x {
                    Value::Object(_) => text(x, "Name"),
                    other => id_string(other),
                })
                .collect()
        };
        // The limit of the system, when it says, and never above the configured one.
        let mut max_file = self.max_file_bytes();
        if let Some(wmfu) = int(v.get("WebMaxFileUpload")).filter(|w| *w > 2 * REQUEST_OVERHEAD) {
            max_file = max_file.min(wmfu / 4 * 3 - REQUEST_OVERHEAD);
        }
        Ok(Vocabulary {
            statuses: names("States"),
            priorities: names("Priorities"),
            queues: names("Queues"),
            kinds: names("Types"),
            fields: names("DynamicFields"),
            max_file_bytes: Some(max_file),
            max_title_chars: Some(MAX_TITLE_CHARS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_headers_round_trip() {
        let h = from_header(Some("Erika \"E\" Müller, Dr."), "erika@example.org");
        assert_eq!(h, r#""Erika \"E\" Müller, Dr." <erika@example.org>"#);
        assert_eq!(parse_from(&h), (Some("Erika \"E\" Müller, Dr.".into()), Some("erika@example.org".into())));
        assert_eq!(parse_from("max@example.org"), (None, Some("max@example.org".into())));
        assert_eq!(parse_from("SDX API"), (Some("SDX API".into()), None));
        assert_eq!(parse_from("Max <m@x.org>"), (Some("Max".into()), Some("m@x.org".into())));
    }

    #[test]
    fn config_from_settings() {
        let c: crate::systems::SystemConfig = toml::from_str(
            "system = \"otobo\"\nurl = \"http://127.0.0.1:8580/otobo/nph-genericinterface.pl/Webservice/SDX\"\n\
             user = \"sdx-api\"\npassword = \"geheim\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.case_field(), "SDXCase");
        let crate::systems::SystemConfig::Otobo(c) = c else { panic!("not otobo") };
        assert_eq!(c.max_file_bytes, None);
        assert!(!format!("{c:?}").contains("geheim"));
        let o = Otobo::new(c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.max_file_bytes(), 34_951_424);
        assert_eq!(o.request_limit(), 48_000_000);
        assert!(!format!("{o:?}").contains("geheim"));
    }

    fn article(from: &str, sender: &str) -> Article {
        Article {
            id: "1".into(),
            public: true,
            from: Some(from.into()),
            sender_type: Some(sender.into()),
            created_at: None,
            body: String::new(),
            files: vec![],
        }
    }

    #[test]
    fn requester_from_customer_and_articles() {
        let arts = [article("SDX API", "agent"), article("\"Max M\" <max@example.org>", "customer")];
        let c = requester("max@example.org", &arts);
        assert_eq!(c, Some(Contact { name: Some("Max M".into()), email: Some("max@example.org".into()) }));
        // A registered customer user: its login is not an address; the customer's article has it.
        let c = requester("mmuster", &arts);
        assert_eq!(c, Some(Contact { name: Some("Max M".into()), email: Some("max@example.org".into()) }));
        // The placeholder is no e-mail; a name given with it stays.
        let arts = [article(&format!("\"Erika\" <{NO_REQUESTER}>"), "customer")];
        assert_eq!(requester(NO_REQUESTER, &arts), Some(Contact { name: Some("Erika".into()), email: None }));
        assert_eq!(requester(NO_REQUESTER, &[]), None);
    }

    #[test]
    fn lists_and_ids_in_every_shape() {
        let v: Value = serde_json::from_str(r#"{"a":[1,"2"],"b":{"x":1},"c":null}"#).unwrap_or_default();
        assert_eq!(list(v.get("a")).len(), 2);
        assert_eq!(list(v.get("b")).len(), 1);
        assert!(list(v.get("c")).is_empty());
        assert!(list(v.get("d")).is_empty());
        assert_eq!(id_string(&json!(3)), Some("3".into()));
        assert_eq!(id_string(&json!("3")), Some("3".into()));
        assert_eq!(id_string(&json!(null)), None);
    }

    #[test]
    fn times_and_text() {
        let t = parse_time("2026-11-30 12:09:17").map(format_time);
        assert_eq!(t.as_deref(), Some("2026-11-30 12:09:17"));
        assert_eq!(normalize_text("  a\r\nb \n\n"), "a\nb");
        assert_eq!(subject_for("[sdx:1/2]\nHello there", "Note"), "Hello there");
        assert_eq!(subject_for("[sdx:1/2]", "Note"), "Note");
        assert!(check_id("12/../3").is_err());
        assert!(check_field_name("SDXCase").is_ok());
        assert!(check_field_name("SDX Case").is_err());
    }
}
