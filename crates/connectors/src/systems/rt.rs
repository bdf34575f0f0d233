//! Request Tracker 5 (REST2), reached over `<url>/REST/2.0/` with an auth token (`Authorization: token …`).
//!
//! `scripts/ticketsystems/rt-start.sh` sets up an instance for it: the API user `sdx-api` (privileged, rights on
//! the queues `General` and `SDX`, no `DeleteTicket`), its token, the custom field `SDX Case` applied to both
//! queues, RT's default lifecycle plus `closed` (reachable only from `resolved`), and an explicit attachment limit.
//!
//! # REST calls
//! | method | calls |
//! |---|---|
//! | [`changed_since`](TicketSystem::changed_since) | `GET /tickets?query=LastUpdated >= '… +0000'` (paged) |
//! | [`get`](TicketSystem::get) | `GET /ticket/N`, `GET /queue/Q` (name, cached), `GET /user/U` (requester), `POST /ticket/N/history` (`Create`/`Correspond`/`Comment` only, paged), `POST /ticket/N/attachments` twice (metadata of the parts; the text bodies) |
//! | [`find_by_field`](TicketSystem::find_by_field) | `GET /tickets?query='CF.{F}' = 'V'` |
//! | [`create`](TicketSystem::create) | `GET /queue/Q` (its custom fields), `POST /ticket`, maybe `PUT /ticket/N` (status), read-back `GET /ticket/N` |
//! | [`update`](TicketSystem::update) | `GET /ticket/N`, `GET /queue/Q` (when fields are set), `PUT /ticket/N`, read-back |
//! | [`comment`](TicketSystem::comment) | `POST /ticket/N/correspond` (public) or `/comment` (internal), read-back of the new transaction (`Location` header) and its parts, and (with files) `POST /ticket/N/history` for `AttachmentDrop`/`AttachmentTruncate` records |
//! | [`download`](TicketSystem::download) | `GET /attachment/A` (base64), `GET /transaction/T` (the file belongs to the ticket) |
//! | [`vocabulary`](TicketSystem::vocabulary) | `GET /queues/all`, `POST /customfields`, `GET /Search/Build.html` (statuses) |
//!
//! # Gotchas handled here
//! - **A refused update answers 200** with a list of messages (`["Ticket 1: You can't change status from 'new'
//!   to 'closed'."]`); an unknown custom field is ignored without a message. Every write is read back and a value
//!   that did not take is [`SystemError::Refused`], with RT's messages as the detail.
//! - **Priority**: REST2 (RT 5.0.3) shows the number (`"100"`), although RT's history speaks of `High`. `PUT` takes
//!   a name, but an unknown name silently becomes 0 (`Low`), and `POST /ticket` stores a name *as is* in SQLite.
//!   So this client maps names ↔ numbers itself, with RT's `%PriorityAsString` default (`Low` 0, `Medium` 50,
//!   `High` 100; [`Config::priorities`] for another), sends numbers and refuses unknown names before writing.
//! - **Create with a status the lifecycle does not allow for new tickets** (`stalled`, `rejected`: 400 "New tickets
//!   can not have status …"): created with RT's initial status, then the status is set by `PUT`.
//! - **Subjects are cut silently at 200 bytes** (UTF-8, the column size): a longer title is
//!   [`SystemError::TooLarge`] before anything is written.
//! - **Files**: above `$MaxAttachmentSize` RT drops (or truncates) a file depending on its config; this client
//!   refuses files (and texts, which RT stores the same way) above [`Config::max_file_bytes`] (default 10 MiB,
//!   RT's default) with [`SystemError::TooLarge`] before writing, and checks the sizes RT stored afterwards.
//!   RT re-encodes `text/plain`, `text/html` and `message/rfc822` parts to UTF-8, guessing the charset: such files
//!   are sent with `charset=UTF-8` when they are UTF-8, else as `application/octet-stream`, so that the bytes
//!   come back unchanged. Non-ASCII file names are sent as RFC 2047 words (REST2 mangles them otherwise).
//! - **Attachment content**: list views give `Content` as text (bytes of binary files as Latin-1 characters),
//!   `GET /attachment/N` as base64. Bodies come from the list (text parts only), files from `GET /attachment/N`.
//!   `fields=Parent` in an attachment list answers 500 (RT bug) and is not asked for.
//! - **Text**: RT turns CRLF into LF in bodies; [`Comment::text`] has LF line ends. Bodies written as HTML (RT's
//!   rich-text editor) are reduced to text. The body is the first `text/plain` part without file name, else the
//!   first `text/html` one, as RT's own `ContentObj` chooses. `EmailRecord` transactions (the copies of the mails
//!   RT sends) are not comments.
//! - **Comment id**: `POST …/comment` answers `["Comments added"]`; the transaction is in the `Location` header.
//! - **Dates** are UTC strings (`2026-11-30T15:38:56Z`); TicketSQL takes `'YYYY-MM-DD HH:MM:SS +0000'` (without
//!   the offset, RT reads the user's time zone). A comment updates the ticket's `LastUpdated`, so
//!   `LastUpdated >=` finds tickets whose only change is a comment, inclusive to the second.
//! - **Statuses**: REST2 has no lifecycle resource. The status list comes from RT's search builder page (same
//!   token; the web UI accepts it too), RT's default lifecycle when that page cannot be read. `deleted` is not
//!   listed there: it needs `DeleteTicket`, which the API user does not have (RT answers "Permission Denied").
//! - **Paging**: at most 100 items a page, and RT checks rights on transactions (and, with
//!   `$UseSQLForACLChecks` off, tickets) *after* paging, so a page can be short in the middle: collections are
//!   read until an empty page. `total`/`pages` are `null` for a user who may not see everything.
//! - **Deleted tickets** keep answering `GET /ticket/N` (status `deleted`) but never appear in a REST2 search,
//!   not even with `Status = 'deleted'`: they drop out of `changed_since` and `find_by_field`.
//! - **Auth**: a bad token is 401; RT checks the token with bcrypt on every request (cost 12 by default ≈ 0.3 s
//!   CPU per call: the start script lowers it). 403 means a missing right (Refused, or NotFound on reads).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::secret::Secret;
use crate::system::{
    Comment, Contact, FileInfo, NewComment, NewFile, NewTicket, SystemError, SystemResult, Ticket, TicketChange,
    TicketId, TicketSystem, Vocabulary,
};

const SYSTEM: &str = "rt";
/// RT's default `$MaxAttachmentSize`.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// `Tickets.Subject` is `varchar(200)`: RT cuts longer subjects (in bytes of UTF-8) without a word.
pub const MAX_SUBJECT_BYTES: usize = 200;
/// Items per page of a REST2 collection (RT's maximum is 100).
const PER_PAGE: usize = 100;
/// At most this many pages are read from one collection (100 000 items; more is a `Protocol` error).
const MAX_PAGES: usize = 1000;
/// RT 5's default lifecycle, for when the status list cannot be read.
const DEFAULT_STATUSES: &[&str] = &["new", "open", "stalled", "resolved", "rejected"];

fn default_case_field() -> String {
    "SDX Case".into()
}

/// How to reach Request Tracker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of RT (`http://127.0.0.1:9080`), without `/REST/2.0`.
    pub url: String,
    /// An auth token of the API user (`1-27-…`), sent as `Authorization: token …`.
    pub token: Secret,
    /// The ticket custom field that holds the SDX case id.
    #[serde(default = "default_case_field")]
    pub case_field: String,
    /// RT's `$MaxAttachmentSize` (default 10 MiB): larger files and texts are refused before writing.
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
    /// RT's `%PriorityAsString` (name → number); default `Low` 0, `Medium` 50, `High` 100.
    #[serde(default)]
    pub priorities: Option<BTreeMap<String, i64>>,
}

/// A Request Tracker client (cheap to clone).
#[derive(Debug, Clone)]
pub struct Rt {
    http: reqwest::Client,
    /// `<url>/` (the web UI).
    web: Url,
    /// `<url>/REST/2.0/`.
    api: Url,
    token: Secret,
    case_field: String,
    max_file_bytes: u64,
    /// Priority names and numbers, highest number first.
    priorities: Vec<(String, i64)>,
    /// Queue id → name.
    queues: Arc<Mutex<HashMap<String, String>>>,
}

impl Rt {
    /// A client (no request is made yet).
    pub fn new(config: Config) -> SystemResult<Self> {
        let mut base = config.url.trim().trim_end_matches('/').to_string();
        if let Some(stripped) = base.strip_suffix("/REST/2.0") {
            base = stripped.to_string();
        }
        let web = Url::parse(&format!("{base}/")).map_err(|e| protocol(format!("invalid url: {e}")))?;
        if !matches!(web.scheme(), "http" | "https") {
            return Err(protocol("the url must be http or https".into()));
        }
        let api = web.join("REST/2.0/").map_err(|e| protocol(format!("invalid url: {e}")))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("sdx-connectors/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| protocol(format!("http client: {e}")))?;
        let mut priorities: Vec<(String, i64)> = match config.priorities {
            Some(p) if !p.is_empty() => p.into_iter().collect(),
            _ => vec![("Low".into(), 0), ("Medium".into(), 50), ("High".into(), 100)],
        };
        priorities.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(Rt {
            http,
            web,
            api,
            token: config.token,
            case_field: config.case_field,
            max_file_bytes: config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
            priorities,
            queues: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The custom field that holds the SDX case id.
    pub fn case_field(&self) -> &str {
        &self.case_field
    }

    // ---------------------------------------------------------------------------------------------------------
    // HTTP

    /// `<api>/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> SystemResult<Url> {
        let mut url = self.api.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| protocol("the url cannot be a base".into()))?;
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        Ok(url)
    }

    /// One request; transport failures are `Unavailable`, 401 is `Auth`, 5xx/408/429 are `Unavailable`. Other
    /// statuses are returned for the caller to interpret.
    async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> SystemResult<Answer> {
        let path = url.path().to_string();
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(reqwest::header::AUTHORIZATION, format!("token {}", self.token.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = resp.bytes().await.map_err(transport)?;
        tracing::debug!(system = SYSTEM, %method, %path, status = status.as_u16(), "rt answered");
        if status == StatusCode::UNAUTHORIZED {
            return Err(SystemError::Auth {
                system: SYSTEM,
                detail: message_of(&bytes).unwrap_or_else(|| "401".into()),
            });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
        {
            return Err(SystemError::Unavailable { system: SYSTEM, detail: format!("HTTP {}", status.as_u16()) });
        }
        Ok(Answer { status, location, bytes: bytes.to_vec() })
    }

    /// A JSON answer of a read of ticket `id`: 404/403 are `NotFound`, 400 `Refused`.
    async fn read_json(&self, url: Url, query: &[(&str, String)], id: &str) -> SystemResult<Value> {
        let a = self.send(Method::GET, url, query, None).await?;
        match a.status {
            s if s.is_success() => a.json(),
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => Err(not_found(id)),
            _ => Err(a.failure()),
        }
    }

    /// Every item of a paged collection (`GET`, or `POST` with a JSON query).
    ///
    /// RT filters some collections by the user's rights *after* paging (transactions, custom fields; tickets
    /// when `$UseSQLForACLChecks` is off), so a short page is not always the last one: unless `short_page_ends`
    /// (the caller knows that every row is visible), pages are read until an empty one.
    async fn collect(
        &self,
        url: Url,
        query: &[(&str, String)],
        body: Option<&Value>,
        short_page_ends: bool,
    ) -> SystemResult<Vec<Value>> {
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("per_page", PER_PAGE.to_string()));
            q.push(("page", page.to_string()));
            let method = if body.is_some() { Method::POST } else { Method::GET };
            let a = self.send(method, url.clone(), &q, body).await?;
            if !a.status.is_success() {
                return Err(a.failure());
            }
            let v = a.json()?;
            let page_items = v
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| protocol("a collection without items".into()))?;
            let n = page_items.len();
            items.extend(page_items.iter().cloned());
            // `pages` is only there when RT counted every row (a user who may see all).
            let last = match v.get("pages").and_then(Value::as_f64) {
                Some(pages) => page as f64 >= pages,
                None => n == 0 || (short_page_ends && n < PER_PAGE),
            };
            if last {
                return Ok(items);
            }
        }
        Err(protocol(format!("a collection of more than {} items", MAX_PAGES * PER_PAGE)))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Pieces

    /// The ticket record (`GET /ticket/N`) in the form this client compares.
    async fn core(&self, id: &str) -> SystemResult<Core> {
        let v = self.read_json(self.url(&["ticket", id])?, &[], id).await?;
        let queue_id = v.get("Queue").and_then(|q| text(q.get("id"))).unwrap_or_default();
        let queue = if queue_id.is_empty() { None } else { Some(self.queue_name(&queue_id).await?) };
        let mut fields = BTreeMap::new();
        for cf in v.get("CustomFields").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = text(cf.get("name")) else { continue };
            let values: Vec<String> = cf
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|x| text(Some(x)))
                .collect();
            if !values.is_empty() {
                fields.insert(name, values.join("\n"));
            }
        }
        let requestor =
            v.get("Requestor").and_then(Value::as_array).and_then(|r| r.first()).and_then(|r| text(r.get("id")));
        Ok(Core {
            id: text(v.get("id")).ok_or_else(|| protocol("a ticket without id".into()))?,
            title: text(v.get("Subject")).unwrap_or_default(),
            status: text(v.get("Status")).ok_or_else(|| protocol("a ticket without status".into()))?,
            priority: text(v.get("Priority")).map(|p| self.priority_name(&p)),
            queue,
            requestor,
            fields,
            created_at: date(v.get("Created"))?,
            updated_at: date(v.get("LastUpdated"))?,
        })
    }

    /// A queue's name by id (cached; `GET /queue/N`).
    async fn queue_name(&self, queue_id: &str) -> SystemResult<String> {
        if let Some(n) = self.queues.lock().unwrap_or_else(|e| e.into_inner()).get(queue_id) {
            return Ok(n.clone());
        }
        let a = self.send(Method::GET, self.url(&["queue", queue_id])?, &[], None).await?;
        if !a.status.is_success() {
            // A queue the user cannot see: its id is all there is.
            return Ok(queue_id.to_string());
        }
        let name = text(a.json()?.get("Name")).ok_or_else(|| protocol("a queue without a name".into()))?;
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).insert(queue_id.to_string(), name.clone());
        Ok(name)
    }

    /// The ticket custom fields of a queue (by name); `Refused` when the queue does not exist or is not visible.
    async fn queue_fields(&self, queue: &str) -> SystemResult<Vec<String>> {
        let a = self.send(Method::GET, self.url(&["queue", queue])?, &[], None).await?;
        if matches!(a.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) {
            return Err(refused(format!("queue `{queue}` does not exist or the API user may not see it")));
        }
        if !a.status.is_success() {
            return Err(a.failure());
        }
        let v = a.json()?;
        Ok(v.get("TicketCustomFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|cf| text(cf.get("name")))
            .collect())
    }

    /// Refuse fields the queue does not have (RT ignores them without a word).
    async fn check_fields(&self, queue: &str, fields: &BTreeMap<String, String>) -> SystemResult<()> {
        let offered = self.queue_fields(queue).await?;
        let missing: Vec<&str> = fields.keys().filter(|f| !offered.contains(f)).map(String::as_str).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(refused(format!("queue `{queue}` has no custom field {}", missing.join(", "))))
        }
    }

    /// The requester as a contact (`GET /user/NAME`; only the name when the user is not visible).
    async fn contact(&self, name: &str) -> SystemResult<Contact> {
        let a = self.send(Method::GET, self.url(&["user", name])?, &[], None).await?;
        if !a.status.is_success() {
            return Ok(Contact { name: None, email: name.contains('@').then(|| name.to_string()) });
        }
        let v = a.json()?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(Contact {
            name: non_empty(text(v.get("RealName"))),
            email: non_empty(text(v.get("EmailAddress"))).or_else(|| name.contains('@').then(|| name.to_string())),
        })
    }

    /// The parts of some transactions of ticket `id`: metadata of all, content of the text bodies.
    async fn parts(&self, id: &str, txns: &[u64]) -> SystemResult<Vec<Part>> {
        let mut parts = Vec::new();
        // RT writes the ids into the SQL: keep the statement small.
        for chunk in txns.chunks(500) {
            parts.extend(self.parts_of(id, chunk).await?);
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// [`Rt::parts`] for up to 500 transactions.
    async fn parts_of(&self, id: &str, txns: &[u64]) -> SystemResult<Vec<Part>> {
        if txns.is_empty() {
            return Ok(Vec::new());
        }
        let url = self.url(&["ticket", id, "attachments"])?;
        let in_txns = json!({"field": "TransactionId", "operator": "IN", "value": txns});
        // The parts and their texts are two independent searches: asked side by side.
        let meta_fields =
            [("fields", "TransactionId,ContentType,Filename,ContentLength".into()), ("orderby", "id".into())];
        let meta_filter = json!([in_txns]);
        let body_fields = [("fields", "TransactionId,ContentType,Content".into())];
        let body_filter = json!([
            in_txns,
            {"field": "Filename", "operator": "IS", "value": "NULL"},
            {"field": "ContentType", "operator": "IN", "value": ["text/plain", "text/html"]},
        ]);
        let (meta, bodies) = tokio::join!(
            self.collect(url.clone(), &meta_fields, Some(&meta_filter), true),
            self.collect(url, &body_fields, Some(&body_filter), true),
        );
        let (meta, bodies) = (meta?, bodies?);
        let mut content: HashMap<String, String> = HashMap::new();
        for b in &bodies {
            if let (Some(aid), Some(c)) = (text(b.get("id")), text(b.get("Content"))) {
                content.insert(aid, c);
            }
        }
        let mut parts = Vec::new();
        for m in &meta {
            let Some(aid) = text(m.get("id")) else { continue };
            let Some(txn) = m.get("TransactionId").and_then(|t| text(Some(t)).or_else(|| text(t.get("id")))) else {
                continue;
            };
            let Ok(txn) = txn.parse::<u64>() else { continue };
            parts.push(Part {
                content: content.remove(&aid),
                number: aid.parse().unwrap_or(u64::MAX),
                id: aid,
                txn,
                media_type: text(m.get("ContentType")).unwrap_or_default().to_ascii_lowercase(),
                filename: text(m.get("Filename")).filter(|f| !f.is_empty()),
                size: text(m.get("ContentLength")).and_then(|s| s.parse().ok()).unwrap_or(0),
            });
        }
        Ok(parts)
    }

    /// Name of a priority number (RT's rule: the highest name whose number is ≤ the value).
    fn priority_name(&self, value: &str) -> String {
        let Ok(n) = value.trim().parse::<i64>() else { return value.to_string() };
        self.priorities
            .iter()
            .find(|(_, v)| n >= *v)
            .or(self.priorities.last())
            .map_or_else(|| value.to_string(), |(name, _)| name.clone())
    }

    /// Number of a priority name; `Refused` for a name RT does not have (RT would store 0 without a word).
    fn priority_number(&self, name: &str) -> SystemResult<i64> {
        self.priorities.iter().find(|(n, _)| n == name).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = self.priorities.iter().rev().map(|(n, _)| n.as_str()).collect();
            refused(format!("priority `{name}` is not one of {}", names.join(", ")))
        })
    }

    /// Compare the ticket with what was asked for; the mismatches.
    fn mismatches(&self, t: &Core, want: &Want<'_>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(title) = want.title
            && t.title != title
        {
            out.push("the title differs".to_string());
        }
        if let Some(s) = want.status
            && t.status != s
        {
            out.push(format!("status is `{}`, not `{s}`", t.status));
        }
        if let Some(p) = want.priority
            && t.priority.as_deref() != Some(p)
        {
            out.push(format!("priority is `{}`, not `{p}`", t.priority.as_deref().unwrap_or("")));
        }
        if let Some(q) = want.queue
            && t.queue.as_deref() != Some(q)
        {
            out.push(format!("queue is `{}`, not `{q}`", t.queue.as_deref().unwrap_or("")));
        }
        for (k, v) in want.fields {
            if t.fields.get(k) != Some(v) {
                out.push(format!("custom field `{k}` was not set"));
            }
        }
        out
    }

    /// `TooLarge` for a text above RT's attachment limit (RT stores bodies as attachments).
    fn check_text(&self, what: &str, text: &str) -> SystemResult<()> {
        let size = text.len() as u64;
        if size > self.max_file_bytes {
            return Err(SystemError::TooLarge { system: SYSTEM, what: what.into(), size, limit: self.max_file_bytes });
        }
        Ok(())
    }

    /// The statuses RT's search builder offers (REST2 has no lifecycle resource).
    async fn statuses(&self) -> Option<Vec<String>> {
        let url = self.web.join("Search/Build.html").ok()?;
        let a = self.send(Method::GET, url, &[], None).await.ok()?;
        if !a.status.is_success() {
            return None;
        }
        let page = String::from_utf8_lossy(&a.bytes);
        let list = status_options(&page);
        (!list.is_empty()).then_some(list)
    }
}

/// An HTTP answer.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> SystemResult<Value> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| protocol(format!("HTTP {}: not JSON ({e})", self.status.as_u16())))
    }

    /// The error for an answer that is not a success (after `send` took out 401 and 5xx).
    fn failure(&self) -> SystemError {
        let detail = message_of(&self.bytes).unwrap_or_else(|| format!("HTTP {}", self.status.as_u16()));
        match self.status {
            StatusCode::BAD_REQUEST
            | StatusCode::FORBIDDEN
            | StatusCode::CONFLICT
            | StatusCode::UNPROCESSABLE_ENTITY => refused(detail),
            StatusCode::PAYLOAD_TOO_LARGE => refused(format!("too large: {detail}")),
            s => protocol(format!("HTTP {}: {detail}", s.as_u16())),
        }
    }
}

/// The fields of a ticket this client compares.
struct Core {
    id: String,
    title: String,
    status: String,
    priority: Option<String>,
    queue: Option<String>,
    requestor: Option<String>,
    fields: BTreeMap<String, String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

/// What a write asked for.
struct Want<'a> {
    title: Option<&'a str>,
    status: Option<&'a str>,
    priority: Option<&'a str>,
    queue: Option<&'a str>,
    fields: &'a BTreeMap<String, String>,
}

/// One attachment (MIME part) of a transaction.
struct Part {
    id: String,
    number: u64,
    txn: u64,
    media_type: String,
    filename: Option<String>,
    size: u64,
    /// The text, for body candidates (`text/plain`/`text/html` without file name).
    content: Option<String>,
}

/// A transaction's body text (RT's choice: first plain-text part without a file name, else the first HTML one)
/// and its files.
fn body_and_files(parts: &[Part], txn: u64) -> (String, Vec<FileInfo>) {
    let own: Vec<&Part> = parts.iter().filter(|p| p.txn == txn).collect();
    let body = own
        .iter()
        .find(|p| p.filename.is_none() && p.media_type == "text/plain" && p.content.is_some())
        .and_then(|p| p.content.as_deref().map(normalise_text))
        .or_else(|| {
            own.iter()
                .find(|p| p.filename.is_none() && p.media_type == "text/html" && p.content.is_some())
                .and_then(|p| p.content.as_deref().map(html_to_text))
        })
        .unwrap_or_default();
    let files = own
        .iter()
        .filter_map(|p| {
            p.filename.as_ref().map(|name| FileInfo {
                id: p.id.clone(),
                name: name.clone(),
                media_type: if p.media_type.is_empty() {
                    "application/octet-stream".into()
                } else {
                    p.media_type.clone()
                },
                size: p.size,
            })
        })
        .collect();
    (body, files)
}

/// Line ends as RT stores them (LF).
fn normalise_text(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// HTML reduced to text: whitespace collapses as a browser shows it (except in `<pre>`), block ends and `<br>`
/// become line breaks, tags go, entities are decoded.
fn html_to_text(html: &str) -> String {
    fn push_text(out: &mut String, raw: &str, pre: bool) {
        let t = if pre {
            decode_entities(raw)
        } else {
            let mut c = String::with_capacity(raw.len());
            for ch in raw.chars() {
                if !ch.is_ascii_whitespace() {
                    c.push(ch);
                } else if !c.ends_with(' ') {
                    c.push(' ');
                }
            }
            decode_entities(&c)
        };
        if !pre && (out.is_empty() || out.ends_with('\n') || out.ends_with(' ')) {
            out.push_str(t.trim_start_matches(' '));
        } else {
            out.push_str(&t);
        }
    }
    fn newline(out: &mut String) {
        while out.ends_with(' ') {
            out.pop();
        }
        out.push('\n');
    }
    let mut out = String::with_capacity(html.len());
    let mut pre = 0usize;
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        push_text(&mut out, &rest[..lt], pre > 0);
        let after = &rest[lt + 1..];
        let Some(gt) = after.find('>') else {
            push_text(&mut out, &rest[lt..], pre > 0);
            rest = "";
            break;
        };
        let tag = after[..gt].trim().to_ascii_lowercase();
        let closing = tag.starts_with('/');
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        rest = &after[gt + 1..];
        if !closing && matches!(name.as_str(), "style" | "script" | "head" | "title") {
            let close = format!("</{name}");
            match rest.to_ascii_lowercase().find(&close) {
                Some(end) => {
                    rest = &rest[end..];
                    if let Some(gt) = rest.find('>') {
                        rest = &rest[gt + 1..];
                    }
                }
                None => rest = "",
            }
            continue;
        }
        match name.as_str() {
            "br" => newline(&mut out),
            "pre" if !closing => {
                if !out.is_empty() && !out.ends_with('\n') {
                    newline(&mut out);
                }
                pre += 1;
            }
            "pre" => {
                pre = pre.saturating_sub(1);
                if !out.ends_with('\n') {
                    newline(&mut out);
                }
            }
            "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "blockquote" | "table" | "ul"
            | "ol"
                if !out.is_empty() && !out.ends_with('\n') =>
            {
                newline(&mut out)
            }
            _ => {}
        }
    }
    push_text(&mut out, rest, pre > 0);
    normalise_text(out.trim_end_matches([' ', '\n', '\t'])).replace('\u{a0}', " ")
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;`, German umlauts, `&euro;`, `&#N;`, `&#xH;`.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &after[..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                "auml" => Some('ä'),
                "ouml" => Some('ö'),
                "uuml" => Some('ü'),
                "Auml" => Some('Ä'),
                "Ouml" => Some('Ö'),
                "Uuml" => Some('Ü'),
                "szlig" => Some('ß'),
                "euro" => Some('€'),
                _ => ent
                    .strip_prefix("#x")
                    .or_else(|| ent.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The options of `<select name="ValueOfStatus">` on RT's search builder page, without `__Active__` & co.
fn status_options(page: &str) -> Vec<String> {
    let Some(start) = page.find("name=\"ValueOfStatus\"") else { return Vec::new() };
    let select = &page[start..];
    let select = &select[..select.find("</select>").unwrap_or(select.len())];
    let mut out = Vec::new();
    let mut rest = select;
    while let Some(i) = rest.find("<option value=\"") {
        rest = &rest[i + "<option value=\"".len()..];
        let Some(end) = rest.find('"') else { break };
        let value = decode_entities(&rest[..end]);
        if !value.is_empty() && !value.starts_with("__") && !out.contains(&value) {
            out.push(value);
        }
        rest = &rest[end..];
    }
    out
}

/// A REST2 id or value as text (RT sends ids as strings or numbers).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A REST2 date (`2026-11-30T15:38:56Z`).
fn date(v: Option<&Value>) -> SystemResult<OffsetDateTime> {
    let s = text(v).ok_or_else(|| protocol("a ticket without a date".into()))?;
    OffsetDateTime::parse(&s, &Rfc3339).map_err(|e| protocol(format!("date `{s}`: {e}")))
}

/// A TicketSQL date in UTC with explicit offset, whole seconds (RT reads dates without offset in the user's zone).
fn sql_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A TicketSQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The `message` of a REST2 error answer, or its message list joined.
fn message_of(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    match &v {
        Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_string),
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")),
        _ => None,
    }
}

/// A ticket id is a number: anything else cannot exist (and must not reach a URL path).
fn check_id(id: &str) -> SystemResult<()> {
    if !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_digit()) { Ok(()) } else { Err(not_found(id)) }
}

/// A MIME file name REST2 keeps: RFC 2047 (`=?UTF-8?B?…?=`) unless plain ASCII.
fn mime_filename(name: &str) -> String {
    let plain = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b" ._-+,()[]@#$%&!~=".contains(&b))
        && !name.contains("=?");
    if plain {
        name.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(name.as_bytes()))
    }
}

/// The `FileType` to send so that RT stores the bytes unchanged (it re-encodes these types to UTF-8).
fn mime_type_for(file: &NewFile) -> String {
    let essence = file.media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence.is_empty() || !essence.contains('/') {
        return "application/octet-stream".into();
    }
    if matches!(essence.as_str(), "text/plain" | "text/html" | "message/rfc822") {
        if std::str::from_utf8(&file.content).is_ok() {
            return format!("{essence}; charset=UTF-8");
        }
        return "application/octet-stream".into();
    }
    essence
}

/// `Name <email>` for RT's requestor (the name quoted when it needs it).
fn mailbox(c: &Contact) -> Option<String> {
    let email = c.email.as_deref().map(str::trim).filter(|e| e.contains('@'))?;
    match c.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => {
            let clean: String = n.chars().filter(|c| !c.is_control()).collect();
            Some(format!("\"{}\" <{email}>", clean.replace('\\', "\\\\").replace('"', "\\\"")))
        }
        None => Some(email.to_string()),
    }
}

/// A transport error (the URL left out: its path may name a user).
fn transport(e: reqwest::Error) -> SystemError {
    let e = e.without_url();
    if e.is_builder() {
        return protocol(format!("the request could not be built (a token with odd characters?): {e}"));
    }
    if e.is_decode() {
        return protocol(format!("unreadable answer: {e}"));
    }
    SystemError::Unavailable { system: SYSTEM, detail: e.to_string() }
}

fn protocol(detail: String) -> SystemError {
    SystemError::Protocol { system: SYSTEM, detail }
}

fn refused(detail: String) -> SystemError {
    SystemError::Refused { system: SYSTEM, detail }
}

fn not_found(id: &str) -> SystemError {
    SystemError::NotFound { system: SYSTEM, id: id.chars().take(64).collect() }
}

impl TicketSystem for Rt {
    fn kind(&self) -> &'static str {
        SYSTEM
    }

    async fn changed_since(&self, since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        let query = format!("LastUpdated >= '{}'", sql_date(since));
        let items = self
            .collect(
                self.url(&["tickets"])?,
                &[
                    ("query", query),
                    ("fields", "LastUpdated".into()),
                    ("orderby", "id".into()),
                    ("order", "ASC".into()),
                ],
                None,
                false,
            )
            .await?;
        let mut ids: Vec<TicketId> = items.iter().filter_map(|i| text(i.get("id"))).collect();
        ids.dedup();
        tracing::debug!(system = SYSTEM, count = ids.len(), "changed tickets");
        Ok(ids)
    }

    async fn get(&self, id: &str) -> SystemResult<Ticket> {
        check_id(id)?;
        // Every REST2 call costs RT tens of milliseconds: what does not depend on another is asked side by side.
        let history_url = self.url(&["ticket", id, "history"])?;
        let history_filter = json!([{"field": "Type", "operator": "IN", "value": ["Create", "Correspond", "Comment"]}]);
        let history_fields = [("fields", "Type,Creator,Created".to_string())];
        let (core, history) =
            tokio::join!(self.core(id), self.collect(history_url, &history_fields, Some(&history_filter), false));
        let (core, history) = (core?, history?);
        let mut txns: Vec<(u64, String, Option<String>, OffsetDateTime)> = history
            .iter()
            .filter_map(|t| {
                let kind = text(t.get("Type"))?;
                if !matches!(kind.as_str(), "Create" | "Correspond" | "Comment") {
                    return None;
                }
                let tid = text(t.get("id"))?.parse().ok()?;
                let author = t.get("Creator").and_then(|c| text(c.get("id")));
                let created = date(t.get("Created")).ok()?;
                Some((tid, kind, author, created))
            })
            .collect();
        txns.sort_by_key(|t| t.0);
        let ids: Vec<u64> = txns.iter().map(|t| t.0).collect();
        let requester = async {
            match &core.requestor {
                Some(r) => self.contact(r).await.map(Some),
                None => Ok(None),
            }
        };
        let (requester, parts) = tokio::join!(requester, self.parts(id, &ids));
        let (requester, parts) = (requester?, parts?);
        let mut description = None;
        let mut comments = Vec::new();
        for (tid, kind, author, created) in txns {
            let (body, files) = body_and_files(&parts, tid);
            if kind == "Create" && description.is_none() && comments.is_empty() {
                description = Some(body);
                continue;
            }
            comments.push(Comment {
                id: tid.to_string(),
                public: kind != "Comment",
                author,
                created_at: created,
                text: body,
                files,
            });
        }
        Ok(Ticket {
            number: core.id.clone(),
            id: core.id,
            title: core.title,
            description: description.unwrap_or_default(),
            status: core.status,
            priority: core.priority,
            queue: core.queue,
            kind: None,
            requester,
            fields: core.fields,
            created_at: core.created_at,
            updated_at: core.updated_at,
            comments,
        })
    }

    async fn find_by_field(&self, field: &str, value: &str) -> SystemResult<Option<TicketId>> {
        if field.is_empty() || field.contains(['{', '}', '\'', '\\', '\n', '\r']) {
            return Err(refused(format!("RT's TicketSQL cannot name the custom field `{field}`")));
        }
        let query = format!("'CF.{{{field}}}' = {}", sql_string(value));
        let url = self.url(&["tickets"])?;
        let q = [
            ("query", query),
            ("fields", "id".to_string()),
            ("orderby", "id".to_string()),
            ("order", "ASC".to_string()),
            ("per_page", "1".to_string()),
        ];
        let a = self.send(Method::GET, url, &q, None).await?;
        if !a.status.is_success() {
            return Err(a.failure());
        }
        let v = a.json()?;
        let items =
            v.get("items").and_then(Value::as_array).ok_or_else(|| protocol("a search without items".into()))?;
        Ok(items.first().and_then(|i| text(i.get("id"))))
    }

    async fn create(&self, ticket: &NewTicket) -> SystemResult<TicketId> {
        if ticket.title.len() > MAX_SUBJECT_BYTES {
            return Err(SystemError::TooLarge {
                system: SYSTEM,
                what: "title (bytes of UTF-8)".into(),
                size: ticket.title.len() as u64,
                limit: MAX_SUBJECT_BYTES as u64,
            });
        }
        self.check_text("description", &ticket.description)?;
        if ticket.kind.is_some() {
            return Err(refused("RT tickets have no type".into()));
        }
        let priority = ticket.priority.as_deref().map(|p| self.priority_number(p)).transpose()?;
        if ticket.queue.is_empty() {
            return Err(refused("a ticket needs a queue".into()));
        }
        self.check_fields(&ticket.queue, &ticket.fields).await?;

        let mut body = json!({
            "Queue": ticket.queue,
            "Subject": ticket.title,
        });
        if !ticket.description.is_empty() {
            body["Content"] = json!(ticket.description);
            body["ContentType"] = json!("text/plain");
        }
        if let Some(p) = priority {
            body["Priority"] = json!(p);
        }
        if let Some(r) = ticket.requester.as_ref().and_then(mailbox) {
            body["Requestor"] = json!(r);
        }
        if !ticket.fields.is_empty() {
            body["CustomFields"] = json!(ticket.fields);
        }
        let status = ticket.status.trim();
        let mut later_status = None;
        if !status.is_empty() {
            body["Status"] = json!(status);
        }
        let url = self.url(&["ticket"])?;
        let mut a = self.send(Method::POST, url.clone(), &[], Some(&body)).await?;
        if a.status == StatusCode::BAD_REQUEST
            && message_of(&a.bytes).is_some_and(|m| m.contains("New tickets can not have status"))
        {
            // Not an initial status of the lifecycle (stalled, rejected): create, then change the status.
            if let Some(o) = body.as_object_mut() {
                o.remove("Status");
            }
            later_status = Some(status);
            a = self.send(Method::POST, url, &[], Some(&body)).await?;
        }
        if a.status != StatusCode::CREATED && !a.status.is_success() {
            return Err(a.failure());
        }
        let id = text(a.json()?.get("id")).ok_or_else(|| protocol("a created ticket without id".into()))?;
        check_id(&id).map_err(|_| protocol("a created ticket with a strange id".into()))?;
        tracing::debug!(system = SYSTEM, ticket = %id, "ticket created");

        let mut messages = String::new();
        if let Some(s) = later_status {
            let a = self.send(Method::PUT, self.url(&["ticket", &id])?, &[], Some(&json!({"Status": s}))).await?;
            if !a.status.is_success() {
                let e = a.failure();
                return Err(refused(format!("ticket {id} was created, but its status was not set: {e}")));
            }
            messages = message_of(&a.bytes).unwrap_or_default();
        }
        let t = self.core(&id).await?;
        let want = Want {
            title: Some(&ticket.title),
            status: (!status.is_empty()).then_some(status),
            priority: ticket.priority.as_deref(),
            queue: Some(&ticket.queue),
            fields: &ticket.fields,
        };
        let wrong = self.mismatches(&t, &want);
        if !wrong.is_empty() {
            return Err(refused(format!(
                "ticket {id} was created, but {}{}",
                wrong.join("; "),
                if messages.is_empty() { String::new() } else { format!(" (RT: {messages})") }
            )));
        }
        Ok(id)
    }

    async fn update(&self, id: &str, change: &TicketChange) -> SystemResult<()> {
        check_id(id)?;
        if change.kind.is_some() {
            return Err(refused("RT tickets have no type".into()));
        }
        let priority = change.priority.as_deref().map(|p| self.priority_number(p)).transpose()?;
        let before = self.core(id).await?;
        if change.is_empty() {
            return Ok(());
        }
        if !change.fields.is_empty() {
            let queue = change.queue.clone().or(before.queue.clone()).unwrap_or_default();
            self.check_fields(&queue, &change.fields).await?;
        }
        let mut body = json!({});
        if let Some(s) = &change.status {
            body["Status"] = json!(s);
        }
        if let Some(p) = priority {
            body["Priority"] = json!(p);
        }
        if let Some(q) = &change.queue {
            body["Queue"] = json!(q);
        }
        if !change.fields.is_empty() {
            body["CustomFields"] = json!(change.fields);
        }
        let a = self.send(Method::PUT, self.url(&["ticket", id])?, &[], Some(&body)).await?;
        match a.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(not_found(id)),
            _ => return Err(a.failure()),
        }
        let messages = message_of(&a.bytes).unwrap_or_default();
        let after = self.core(id).await?;
        let want = Want {
            title: None,
            status: change.status.as_deref(),
            priority: change.priority.as_deref(),
            queue: change.queue.as_deref(),
            fields: &change.fields,
        };
        let wrong = self.mismatches(&after, &want);
        if wrong.is_empty() {
            tracing::debug!(system = SYSTEM, ticket = %id, "ticket updated");
            Ok(())
        } else {
            Err(refused(format!(
                "{}{}",
                wrong.join("; "),
                if messages.is_empty() { String::new() } else { format!(" (RT: {messages})") }
            )))
        }
    }

    async fn comment(&self, id: &str, comment: &NewComment) -> SystemResult<String> {
        check_id(id)?;
        for f in &comment.files {
            let size = f.content.len() as u64;
            if size > self.max_file_bytes {
                return Err(SystemError::TooLarge {
                    system: SYSTEM,
                    what: format!("file {}", f.name),
                    size,
                    limit: self.max_file_bytes,
                });
            }
        }
        self.check_text("comment text", &comment.text)?;
        if comment.text.is_empty() && comment.files.is_empty() {
            return Err(refused("an empty comment".into()));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let attachments: Vec<Value> = comment
            .files
            .iter()
            .map(|f| {
                json!({
                    "FileName": mime_filename(if f.name.is_empty() { "file" } else { &f.name }),
                    "FileType": mime_type_for(f),
                    "FileContent": b64.encode(&f.content),
                })
            })
            .collect();
        let mut body = json!({});
        if !comment.text.is_empty() {
            body["Content"] = json!(comment.text);
            body["ContentType"] = json!("text/plain");
        }
        if !attachments.is_empty() {
            body["Attachments"] = Value::Array(attachments);
        }
        let what = if comment.public { "correspond" } else { "comment" };
        let a = self.send(Method::POST, self.url(&["ticket", id, what])?, &[], Some(&body)).await?;
        match a.status {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(not_found(id)),
            // RT answers a missing ticket here with 400 "Permission Denied": tell the two apart.
            _ => {
                self.core(id).await?;
                return Err(a.failure());
            }
        }
        let txn: u64 = a
            .location
            .as_deref()
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| protocol(format!("the {what} was written, but RT did not say which transaction it is")))?;
        tracing::debug!(system = SYSTEM, ticket = %id, transaction = txn, "comment added");

        // Read back: the text and every file as sent (RT drops files above its limit, keeping a note).
        let parts = self.parts(id, &[txn]).await?;
        let (body, files) = body_and_files(&parts, txn);
        let mut wrong = Vec::new();
        if body != normalise_text(&comment.text) {
            wrong.push("the text differs".to_string());
        }
        for f in &comment.files {
            let name = if f.name.is_empty() { "file" } else { &f.name };
            if !files.iter().any(|s| s.name == name && s.size == f.content.len() as u64) {
                wrong.push(format!("file {name} was not stored as sent"));
            }
        }
        if !comment.files.is_empty() && wrong.is_empty() {
            // A dropped file keeps its Content-Length (and a `.txt` name stays the same): RT's own record of
            // what it dropped or cut is the reliable sign.
            let noted = self
                .collect(
                    self.url(&["ticket", id, "history"])?,
                    &[("fields", "Type,Data".into())],
                    Some(&json!([
                        {"field": "Type", "operator": "IN",
                         "value": ["AttachmentDrop", "AttachmentTruncate", "AttachmentError"]},
                        {"field": "id", "operator": ">", "value": txn},
                    ])),
                    false,
                )
                .await?;
            for n in &noted {
                let file = text(n.get("Data")).unwrap_or_default();
                if comment.files.iter().any(|f| f.name == file) {
                    let what = text(n.get("Type")).unwrap_or_default();
                    wrong.push(format!("RT recorded {what} for file {file}"));
                }
            }
        }
        if !wrong.is_empty() {
            return Err(refused(format!("transaction {txn} on ticket {id} was written, but {}", wrong.join("; "))));
        }
        Ok(txn.to_string())
    }

    async fn download(&self, id: &str, file: &FileInfo) -> SystemResult<Vec<u8>> {
        check_id(id)?;
        check_id(&file.id).map_err(|_| not_found(&format!("{id} (file {})", file.id)))?;
        let missing = || not_found(&format!("{id} (file {})", file.id));
        let v = self.read_json(self.url(&["attachment", &file.id])?, &[], id).await.map_err(|e| match e {
            SystemError::NotFound { .. } => missing(),
            e => e,
        })?;
        let txn =
            v.get("TransactionId").and_then(|t| text(t.get("id")).or_else(|| text(Some(t)))).ok_or_else(missing)?;
        check_id(&txn).map_err(|_| missing())?;
        let t = self.read_json(self.url(&["transaction", &txn])?, &[], id).await?;
        let owner = t.get("Object").and_then(|o| text(o.get("id")));
        let owner_type = t.get("Object").and_then(|o| text(o.get("type")));
        if owner.as_deref() != Some(id) || owner_type.as_deref() != Some("ticket") {
            return Err(missing());
        }
        let content = text(v.get("Content")).unwrap_or_default();
        let clean: String = content.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean.as_bytes())
            .map_err(|e| protocol(format!("attachment {}: content is not base64 ({e})", file.id)))
    }

    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        let queues = self.collect(self.url(&["queues", "all"])?, &[("fields", "Name".into())], None, false).await?;
        let queues: Vec<String> = queues.iter().filter_map(|q| text(q.get("Name"))).collect();
        let cfs = self
            .collect(
                self.url(&["customfields"])?,
                &[("fields", "Name,Disabled".into())],
                Some(&json!([{"field": "LookupType", "value": "RT::Queue-RT::Ticket"}])),
                false,
            )
            .await?;
        let mut fields: Vec<String> = cfs
            .iter()
            .filter(|c| text(c.get("Disabled")).as_deref() != Some("1"))
            .filter_map(|c| text(c.get("Name")))
            .collect();
        fields.sort();
        fields.dedup();
        let statuses = match self.statuses().await {
            Some(s) => s,
            None => {
                tracing::debug!(system = SYSTEM, "status list not readable; RT's default lifecycle assumed");
                DEFAULT_STATUSES.iter().map(|s| s.to_string()).collect()
            }
        };
        Ok(Vocabulary {
            statuses,
            priorities: self.priorities.iter().rev().map(|(n, _)| n.clone()).collect(),
            queues,
            kinds: Vec::new(),
            fields,
            max_file_bytes: Some(self.max_file_bytes),
            // 200 bytes of UTF-8: 50 characters always fit (a longer title is TooLarge at create).
            max_title_chars: Some(MAX_SUBJECT_BYTES / 4),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        let t = html_to_text("<p>Hallo &amp; Gr&uuml;&szlig;e</p><p>a<br>b &#x2713; &#10003;</p><style>x{}</style>");
        assert_eq!(t, "Hallo & Grüße\na\nb ✓ ✓");
        let t = html_to_text("<p>Hallo <b>Welt</b>\n  und   so</p>\n<p>[sdx:x/1]<br />\nZeile&nbsp;2</p>");
        assert_eq!(t, "Hallo Welt und so\n[sdx:x/1]\nZeile 2");
        let t = html_to_text("<div>a</div><pre>  x\n    y</pre><div>b</div>");
        assert_eq!(t, "a\n  x\n    y\nb");
        assert_eq!(html_to_text("a < b & c"), "a < b & c");
    }

    #[test]
    fn statuses_from_the_search_page() {
        let page = r#"<select name="ValueOfStatus" class="x"><option value="" selected="selected">-</option>
<option value="__Active__">Active</option><option value="new" >new</option><option value="closed" >closed</option>
</select><option value="other">"#;
        assert_eq!(status_options(page), vec!["new", "closed"]);
        assert!(status_options("<html></html>").is_empty());
    }

    #[test]
    fn priorities_follow_rts_rule() {
        let rt = Rt::new(Config {
            url: "http://127.0.0.1:1".into(),
            token: Secret::new("x"),
            case_field: "SDX Case".into(),
            max_file_bytes: None,
            priorities: None,
        })
        .unwrap();
        assert_eq!(rt.priority_name("100"), "High");
        assert_eq!(rt.priority_name("70"), "Medium");
        assert_eq!(rt.priority_name("0"), "Low");
        assert_eq!(rt.priority_name("-5"), "Low");
        assert_eq!(rt.priority_name("High"), "High");
        assert_eq!(rt.priority_number("Medium").unwrap(), 50);
        assert!(matches!(rt.priority_number("Urgent"), Err(SystemError::Refused { .. })));
    }

    #[test]
    fn literals_and_names() {
        assert_eq!(sql_string("it's a \\ test"), r"'it\'s a \\ test'");
        assert_eq!(sql_date(OffsetDateTime::from_unix_timestamp(0).unwrap()), "1970-01-01 00:00:00 +0000");
        assert_eq!(mime_filename("report.pdf"), "report.pdf");
        assert_eq!(mime_filename("grüße.txt"), "=?UTF-8?B?Z3LDvMOfZS50eHQ=?=");
        let f =
            |t: &str, c: &[u8]| mime_type_for(&NewFile { name: "x".into(), media_type: t.into(), content: c.to_vec() });
        assert_eq!(f("text/plain", b"abc"), "text/plain; charset=UTF-8");
        assert_eq!(f("text/plain; charset=latin1", b"\xfc"), "application/octet-stream");
        assert_eq!(f("Application/PDF", b"%PDF"), "application/pdf");
        assert_eq!(f("", b""), "application/octet-stream");
        assert_eq!(
            mailbox(&Contact { name: Some("Eva \"E\" Muster".into()), email: Some("e@x.de".into()) }).unwrap(),
            r#""Eva \"E\" Muster" <e@x.de>"#
        );
        assert!(check_id("12").is_ok());
        assert!(check_id("../1").is_err());
    }
}
