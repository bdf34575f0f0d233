//! Redmine 5 over its REST API (JSON, `X-Redmine-API-Key`).
//!
//! # How it is reached
//! The connector logs in with the API key of a *non-admin* user (`sdx-api`, role Developer in the projects it
//! serves), so Redmine's workflow applies to every write exactly as it does to a person; an admin would
//! bypass it. `login_required` must be on: otherwise a wrong key is served as *anonymous* with 200.
//!
//! Vocabulary: a ticket's queue is a **project identifier**, its kind a **tracker name**, its priority and
//! status the names of Redmine's priorities and statuses. Names are mapped to ids through
//! `GET /issue_statuses.json`, `/trackers.json`, `/enumerations/issue_priorities.json` and
//! `/projects.json?include=trackers,issue_custom_fields` (cached; reloaded once when a name is not found).
//! Custom fields are addressed by name and resolved to their id from the projects (only fields *enabled per
//! project* are listed there), then from `/custom_fields.json` (admin only, tried anyway), then from the
//! `custom_fields` of any issue; [`Config::case_field_id`] short-cuts this for the case field.
//!
//! # Calls
//! * ticket: `GET /issues/{id}.json?include=journals,attachments[,allowed_statuses]`
//! * create: `POST /issues.json` (201), update: `PUT /issues/{id}.json` (204)
//! * comment: `PUT /issues/{id}.json` with `notes`, `private_notes` and `uploads` (tokens from
//!   `POST /uploads.json?filename=…&content_type=…`, body `application/octet-stream`)
//! * file: `GET /attachments/download/{id}`
//! * changed since / find: `GET /issues.json` with `status_id=*` (else only open issues), `updated_on=>=…` or
//!   the explicit filter form `f[]=cf_N&op[cf_N]==&v[cf_N][]=…`, `sort=id`, paged by `offset`/`limit=100`.
//!
//! # Gotchas handled here
//! * Redmine answers 204 to writes it partly ignores: a status the workflow does not allow, a project the
//!   user cannot move to, an unknown status id. Every write is read back; a difference is
//!   [`SystemError::Refused`]. Before a status change the issue's `allowed_statuses` (Redmine ≥ 5.0) is
//!   checked so that a refused status changes *nothing* (the other fields of the same PUT would be taken).
//! * A **new** issue always gets its tracker's default status (the default workflow has no transitions from
//!   "new issue"): [`TicketSystem::create`] posts the status and, when Redmine did not take it, moves the
//!   issue there with a second PUT. If the workflow refuses that, the issue exists (with its fields, so
//!   [`TicketSystem::find_by_field`] finds it) and `create` returns `Refused` naming its id.
//! * The description is stored with `\r\n` line ends (Redmine rewrites every line end), notes as sent; both
//!   are given back with `\n` only, and [`TicketSystem::comment`] sends `\n` only, so a written text comes back
//!   verbatim (a text with `\r\n` comes back with `\n`).
//! * A private note with files is **split** by Redmine into a public journal holding only the files and the
//!   private journal holding the text (same author, same second, consecutive ids). [`TicketSystem::get`]
//!   gives the files back on the private comment. Attachments have no privacy in Redmine (everyone who sees
//!   the issue sees its files), so an internal comment with files is refused unless
//!   [`Config::allow_internal_files`] is set; an internal comment without text cannot exist (Redmine makes
//!   blank notes public) and is refused too.
//! * File names are sanitised by Redmine (`a/b:c.txt` becomes `b_c.txt`); the limit is the setting
//!   `attachment_max_size` (KB, not readable by a non-admin: [`Config::max_file_bytes`], default Redmine's
//!   5120 KB); above it `/uploads.json` answers 422, so the client answers `TooLarge` before uploading.
//! * `issues.json` lists only open issues without `status_id=*`; a filter on a field that is not a filter
//!   (`is_filter` off) is silently ignored, so matches are checked against the values read back.
//! * Redmine has no requester: the requester is kept in the string field [`Config::requester_field`]
//!   (`Name <mail>`); without a value there, the issue's author is the requester.
//! * `updated_on>=T` is inclusive: Redmine asks `updated_on > T − 1 s` of timestamps it stores with
//!   microseconds, so changes in the second before `T` are listed too (the caller de-duplicates). A new note
//!   (public or private) touches the issue's `updated_on`, so a comment alone makes a ticket "changed".
//! * 401 is a wrong key, 403 an issue the user may not see (→ `NotFound`) or a write not allowed
//!   (→ `Refused`), 404 no such issue, 422 a validation error (→ `Refused`), 5xx and transport errors
//!   `Unavailable`. Redirects are not followed (an HTML login page is not an answer).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::secret::Secret;
use crate::system::{
    Comment, Contact, FileInfo, NewComment, NewTicket, SystemError, SystemResult, Ticket, TicketChange, TicketId,
    TicketSystem, Vocabulary,
};

const SYSTEM: &str = "redmine";
/// Redmine's default `attachment_max_size`: 5120 KB.
const DEFAULT_MAX_FILE_BYTES: u64 = 5120 * 1024;
/// `validates_length_of :subject, :maximum => 255`.
const MAX_TITLE_CHARS: usize = 255;
/// Redmine's largest page.
const PAGE: usize = 100;

fn default_case_field() -> String {
    "SDX Case".to_string()
}

fn default_requester_field() -> String {
    "SDX Requester".to_string()
}

/// How to reach Redmine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL (`http://127.0.0.1:9081`).
    pub url: String,
    /// The API key of the connector's (non-admin) user, sent as `X-Redmine-API-Key`.
    pub api_key: Secret,
    /// Project identifier where new issues go when the ticket names no queue.
    pub project: String,
    /// The issue custom field that holds the SDX case id.
    #[serde(default = "default_case_field")]
    pub case_field: String,
    /// The case field's id, when its name cannot be resolved by the API user (it is then not enabled per
    /// project and `/custom_fields.json` is admin-only).
    #[serde(default)]
    pub case_field_id: Option<u64>,
    /// The string custom field that keeps the requester (`Name <mail>`); Redmine has no requester of its own.
    #[serde(default = "default_requester_field")]
    pub requester_field: String,
    /// The largest file Redmine takes (its setting `attachment_max_size` × 1024); default 5120 KB.
    #[serde(default)]
    pub max_file_bytes: Option<u64>,
    /// Accept files on internal comments although Redmine shows every attachment to everyone who sees the
    /// issue. Off: such a comment is refused.
    #[serde(default)]
    pub allow_internal_files: bool,
}

/// A Redmine client.
#[derive(Debug, Clone)]
pub struct Redmine {
    config: Config,
    base: String,
    http: reqwest::Client,
    cache: Arc<Mutex<Option<Arc<Names>>>>,
}

/// Names ↔ ids, as loaded from the API.
#[derive(Debug, Default)]
struct Names {
    statuses: Vec<(u64, String)>,
    trackers: Vec<(u64, String)>,
    priorities: Vec<(u64, String)>,
    /// id, identifier
    projects: Vec<(u64, String)>,
    /// custom field name → id
    fields: BTreeMap<String, u64>,
}

fn lookup(list: &[(u64, String)], name: &str) -> Option<u64> {
    list.iter()
        .find(|(_, n)| n == name)
        .or_else(|| list.iter().find(|(_, n)| n.to_lowercase() == name.to_lowercase()))
        .map(|(id, _)| *id)
}

fn name_of(list: &[(u64, String)], id: u64) -> Option<&str> {
    list.iter().find(|(i, _)| *i == id).map(|(_, n)| n.as_str())
}

// ---- errors -------------------------------------------------------------------------------------------------

fn unavailable(detail: impl Into<String>) -> SystemError {
    SystemError::Unavailable { system: SYSTEM, detail: detail.into() }
}
fn refused(detail: impl Into<String>) -> SystemError {
    SystemError::Refused { system: SYSTEM, detail: detail.into() }
}
fn protocol(detail: impl Into<String>) -> SystemError {
    SystemError::Protocol { system: SYSTEM, detail: detail.into() }
}
fn not_found(id: &str) -> SystemError {
    SystemError::NotFound { system: SYSTEM, id: id.to_string() }
}

/// An answer: status and body.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: DeserializeOwned>(&self, what: &str) -> SystemResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| protocol(format!("{what}: unreadable JSON ({e})")))
    }

    /// Redmine's `{"errors": [...]}` joined (validation messages; no ticket content).
    fn errors(&self) -> String {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<String>,
        }
        match serde_json::from_slice::<Errors>(&self.body) {
            Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
            _ => format!("HTTP {}", self.status.as_u16()),
        }
    }

    /// The error for an answer the caller did not expect. `issue` is the issue concerned, if any.
    fn fail(&self, what: &str, issue: Option<&str>) -> SystemError {
        match self.status {
            StatusCode::NOT_FOUND => match issue {
                Some(id) => not_found(id),
                None => refused(format!("{what}: not found")),
            },
            StatusCode::FORBIDDEN => match issue {
                Some(id) if what.starts_with("read") => not_found(id),
                _ => refused(format!("{what}: not allowed for this user (403)")),
            },
            StatusCode::UNPROCESSABLE_ENTITY => refused(format!("{what}: {}", self.errors())),
            s => protocol(format!("{what}: unexpected HTTP {}", s.as_u16())),
        }
    }
}

// ---- the API's JSON -----------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct Named {
    id: u64,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct CustomValue {
    id: u64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: Value,
}

impl CustomValue {
    fn text(&self) -> String {
        value_text(&self.value)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(value_text).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(default)]
    property: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    new_value: Value,
}

#[derive(Debug, Deserialize)]
struct Journal {
    id: u64,
    #[serde(default)]
    user: Option<Named>,
    #[serde(default)]
    notes: Option<String>,
    created_on: String,
    #[serde(default)]
    private_notes: bool,
    #[serde(default)]
    details: Vec<Detail>,
}

impl Journal {
    fn notes(&self) -> &str {
        self.notes.as_deref().unwrap_or("")
    }
    /// Ids of the attachments this journal added.
    fn added_files(&self) -> Vec<u64> {
        self.details
            .iter()
            .filter(|d| d.property == "attachment" && !d.new_value.is_null())
            .filter_map(|d| d.name.parse().ok())
            .collect()
    }
    fn only_files(&self) -> bool {
        self.notes().is_empty()
            && !self.details.is_empty()
            && self.details.iter().all(|d| d.property == "attachment" && !d.new_value.is_null())
    }
}

#[derive(Debug, Deserialize)]
struct Attachment {
    id: u64,
    #[serde(default)]
    filename: String,
    #[serde(default)]
    filesize: u64,
    #[serde(default)]
    content_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    id: u64,
    project: Named,
    tracker: Option<Named>,
    status: Named,
    #[serde(default)]
    priority: Option<Named>,
    #[serde(default)]
    author: Option<Named>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    custom_fields: Vec<CustomValue>,
    created_on: String,
    updated_on: String,
    #[serde(default)]
    journals: Vec<Journal>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    allowed_statuses: Option<Vec<Named>>,
}

impl Issue {
    fn field(&self, id: u64) -> String {
        self.custom_fields.iter().find(|c| c.id == id).map(CustomValue::text).unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
struct IssueEnvelope {
    issue: Issue,
}

#[derive(Debug, Deserialize)]
struct IssueList {
    #[serde(default)]
    issues: Vec<Issue>,
    #[serde(default)]
    total_count: Option<usize>,
}

// ---- helpers ------------------------------------------------------------------------------------------------

/// Redmine keeps the description with `\r\n`; the connector's texts use `\n`.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn parse_time(s: &str, what: &str) -> SystemResult<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| protocol(format!("{what}: not an RFC 3339 time")))
}

/// `Name <mail>`, `mail` or `Name`.
fn contact_to_text(c: &Contact) -> String {
    let name = c.name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let email = c.email.as_deref().map(str::trim).filter(|s| !s.is_empty());
    match (name, email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (None, Some(e)) => e.to_string(),
        (Some(n), None) => n.to_string(),
        (None, None) => String::new(),
    }
}

fn text_to_contact(s: &str) -> Option<Contact> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_suffix('>')
        && let Some((name, email)) = rest.rsplit_once('<')
    {
        let name = name.trim();
        return Some(Contact {
            name: (!name.is_empty()).then(|| name.to_string()),
            email: Some(email.trim().to_string()),
        });
    }
    if s.contains('@') && !s.contains(char::is_whitespace) {
        return Some(Contact { name: None, email: Some(s.to_string()) });
    }
    Some(Contact { name: Some(s.to_string()), email: None })
}

/// Only decimal ids go into a URL path.
fn issue_number(id: &str) -> SystemResult<u64> {
    match id.parse::<u64>() {
        Ok(n) if n > 0 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(not_found(id)),
    }
}

fn file_info(a: &Attachment) -> FileInfo {
    FileInfo {
        id: a.id.to_string(),
        name: a.filename.clone(),
        media_type: a
            .content_type
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "application/octet-stream".into()),
        size: a.filesize,
    }
}

impl Redmine {
    /// A client (no request is made yet).
    pub fn new(config: Config) -> SystemResult<Self> {
        let base = config.url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(refused(format!("url must start with http:// or https://: {base}")));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| unavailable(format!("HTTP client: {e}")))?;
        Ok(Redmine { config, base, http, cache: Arc::new(Mutex::new(None)) })
    }

    fn max_file_bytes(&self) -> u64 {
        self.config.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES)
    }

    /// One request. Transport errors and 5xx are `Unavailable`, 401 is `Auth`; every other status is the
    /// caller's to judge.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> SystemResult<Answer> {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Redmine-API-Key", self.config.api_key.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Bytes(b)) => req.header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(b),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            unavailable(format!("{method} {path}: {kind}"))
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() { "timed out" } else { "failed" };
                unavailable(format!("{method} {path}: reading the answer {kind}"))
            })?
            .to_vec();
        tracing::debug!(system = SYSTEM, %method, path, status = status.as_u16(), "redmine call");
        if status.is_server_error() {
            return Err(unavailable(format!("{method} {path}: HTTP {}", status.as_u16())));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(SystemError::Auth { system: SYSTEM, detail: format!("{method} {path}: HTTP 401") });
        }
        Ok(Answer { status, body })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        issue: Option<&str>,
    ) -> SystemResult<T> {
        let a = self.call(Method::GET, path, query, None).await?;
        if a.status != StatusCode::OK {
            return Err(a.fail(&format!("read {path}"), issue));
        }
        a.json(path)
    }

    async fn issue(&self, id: &str, include: &str) -> SystemResult<Issue> {
        let n = issue_number(id)?;
        let q = [("include", include.to_string())];
        let env: IssueEnvelope = self.get_json(&format!("/issues/{n}.json"), &q, Some(id)).await?;
        Ok(env.issue)
    }

    /// Every page of `/issues.json` with `query` (sorted by id).
    async fn issues(&self, query: &[(&str, String)]) -> SystemResult<Vec<Issue>> {
        let mut out = Vec::new();
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("sort", "id".into()));
            q.push(("limit", PAGE.to_string()));
            q.push(("offset", out.len().to_string()));
            let page: IssueList = self.get_json("/issues.json", &q, None).await?;
            let got = page.issues.len();
            out.extend(page.issues);
            let total = page.total_count.unwrap_or(0);
            if got == 0 || out.len() >= total {
                return Ok(out);
            }
        }
    }

    // ---- names ----------------------------------------------------------------------------------------------

    async fn load_names(&self) -> SystemResult<Names> {
        #[derive(Deserialize)]
        struct Statuses {
            issue_statuses: Vec<Named>,
        }
        #[derive(Deserialize)]
        struct Trackers {
            trackers: Vec<Named>,
        }
        #[derive(Deserialize)]
        struct Priority {
            id: u64,
            name: String,
            #[serde(default = "yes")]
            active: bool,
        }
        fn yes() -> bool {
            true
        }
        #[derive(Deserialize)]
        struct Priorities {
            issue_priorities: Vec<Priority>,
        }
        #[derive(Deserialize)]
        struct Project {
            id: u64,
            identifier: String,
            #[serde(default)]
            issue_custom_fields: Vec<Named>,
        }
        #[derive(Deserialize)]
        struct Projects {
            projects: Vec<Project>,
            #[serde(default)]
            total_count: Option<usize>,
        }
        let statuses: Statuses = self.get_json("/issue_statuses.json", &[], None).await?;
        let trackers: Trackers = self.get_json("/trackers.json", &[], None).await?;
        let priorities: Priorities = self.get_json("/enumerations/issue_priorities.json", &[], None).await?;
        let mut projects = Vec::new();
        loop {
            let q = [
                ("include", "issue_custom_fields".to_string()),
                ("limit", PAGE.to_string()),
                ("offset", projects.len().to_string()),
            ];
            let page: Projects = self.get_json("/projects.json", &q, None).await?;
            let got = page.projects.len();
            projects.extend(page.projects);
            if got == 0 || projects.len() >= page.total_count.unwrap_or(0) {
                break;
            }
        }
        let mut fields = BTreeMap::new();
        for p in &projects {
            for f in &p.issue_custom_fields {
                fields.insert(f.name.clone(), f.id);
            }
        }
        if let Some(id) = self.config.case_field_id {
            fields.insert(self.config.case_field.clone(), id);
        }
        Ok(Names {
            statuses: statuses.issue_statuses.into_iter().map(|s| (s.id, s.name)).collect(),
            trackers: trackers.trackers.into_iter().map(|s| (s.id, s.name)).collect(),
            priorities: priorities.issue_priorities.into_iter().filter(|p| p.active).map(|p| (p.id, p.name)).collect(),
            projects: projects.into_iter().map(|p| (p.id, p.identifier)).collect(),
            fields,
        })
    }

    /// The cached names; `refresh` reloads them.
    async fn names(&self, refresh: bool) -> SystemResult<Arc<Names>> {
        if !refresh && let Some(n) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(n);
        }
        let n = Arc::new(self.load_names().await?);
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(n.clone());
        Ok(n)
    }

    /// Resolve a name with `pick`, reloading the names once when it is not known.
    async fn resolve(&self, what: &str, name: &str, pick: fn(&Names, &str) -> Option<u64>) -> SystemResult<u64> {
        if let Some(id) = pick(&*self.names(false).await?, name) {
            return Ok(id);
        }
        pick(&*self.names(true).await?, name).ok_or_else(|| refused(format!("unknown {what} '{name}'")))
    }

    async fn status_id(&self, name: &str) -> SystemResult<u64> {
        self.resolve("status", name, |n, s| lookup(&n.statuses, s)).await
    }
    async fn tracker_id(&self, name: &str) -> SystemResult<u64> {
        self.resolve("tracker", name, |n, s| lookup(&n.trackers, s)).await
    }
    async fn priority_id(&self, name: &str) -> SystemResult<u64> {
        self.resolve("priority", name, |n, s| lookup(&n.priorities, s)).await
    }
    async fn project_id(&self, identifier: &str) -> SystemResult<u64> {
        self.resolve("project", identifier, |n, s| n.projects.iter().find(|(_, i)| i == s).map(|(id, _)| *id)).await
    }

    /// The identifier of project `id` (the issue JSON names a project by id and name only).
    async fn project_identifier(&self, id: u64) -> SystemResult<String> {
        for refresh in [false, true] {
            if let Some(i) = name_of(&self.names(refresh).await?.projects, id) {
                return Ok(i.to_string());
            }
        }
        #[derive(Deserialize)]
        struct P {
            project: Named2,
        }
        #[derive(Deserialize)]
        struct Named2 {
            identifier: String,
        }
        let p: P = self.get_json(&format!("/projects/{id}.json"), &[], None).await?;
        Ok(p.project.identifier)
    }

    /// The id of custom field `name`: per-project fields, then `/custom_fields.json` (admin), then the fields
    /// any issue shows.
    async fn field_id(&self, name: &str) -> SystemResult<u64> {
        for refresh in [false, true] {
            if let Some(id) = self.names(refresh).await?.fields.get(name) {
                return Ok(*id);
            }
        }
        #[derive(Deserialize)]
        struct Cfs {
            custom_fields: Vec<Cf>,
        }
        #[derive(Deserialize)]
        struct Cf {
            id: u64,
            name: String,
            #[serde(default)]
            customized_type: String,
        }
        let a = self.call(Method::GET, "/custom_fields.json", &[], None).await?;
        if a.status == StatusCode::OK {
            let cfs: Cfs = a.json("/custom_fields.json")?;
            if let Some(cf) = cfs.custom_fields.iter().find(|c| c.name == name && c.customized_type == "issue") {
                return Ok(cf.id);
            }
        }
        let q = [("status_id", "*".to_string()), ("limit", "1".to_string())];
        let page: IssueList = self.get_json("/issues.json", &q, None).await?;
        page.issues
            .iter()
            .flat_map(|i| &i.custom_fields)
            .find(|c| c.name == name)
            .map(|c| c.id)
            .ok_or_else(|| refused(format!("unknown custom field '{name}'")))
    }

    /// `custom_fields` for a write (the requester included when `requester` is given).
    async fn custom_fields(
        &self,
        fields: &BTreeMap<String, String>,
        requester: Option<&Contact>,
    ) -> SystemResult<Vec<(u64, String)>> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.push((self.field_id(name).await?, value.clone()));
        }
        if let Some(c) = requester {
            let text = contact_to_text(c);
            if !text.is_empty() {
                out.push((self.field_id(&self.config.requester_field).await?, text));
            }
        }
        Ok(out)
    }

    // ---- ticket ---------------------------------------------------------------------------------------------

    async fn to_ticket(&self, issue: Issue) -> SystemResult<Ticket> {
        let queue = self.project_identifier(issue.project.id).await?;
        let mut fields = BTreeMap::new();
        let mut requester = None;
        for c in &issue.custom_fields {
            let v = c.text();
            if v.is_empty() {
                continue;
            }
            if c.name == self.config.requester_field {
                requester = text_to_contact(&v);
            } else {
                fields.insert(c.name.clone(), v);
            }
        }
        if requester.is_none() {
            requester = issue.author.as_ref().map(|a| Contact { name: Some(a.name.clone()), email: None });
        }
        let files: BTreeMap<u64, &Attachment> = issue.attachments.iter().map(|a| (a.id, a)).collect();
        let mut journals: Vec<&Journal> = issue.journals.iter().collect();
        journals.sort_by_key(|j| j.id);
        let mut comments = Vec::new();
        let mut carried: Vec<FileInfo> = Vec::new();
        for (i, j) in journals.iter().enumerate() {
            let mut jfiles: Vec<FileInfo> = std::mem::take(&mut carried);
            jfiles.extend(j.added_files().iter().filter_map(|id| files.get(id)).map(|a| file_info(a)));
            // A private note with files was split: the files' journal comes right before, same user and second.
            if j.only_files()
                && let Some(next) = journals.get(i + 1)
                && next.private_notes
                && !next.notes().is_empty()
                && next.created_on == j.created_on
                && next.user.as_ref().map(|u| u.id) == j.user.as_ref().map(|u| u.id)
            {
                carried = jfiles;
                continue;
            }
            if j.notes().is_empty() && jfiles.is_empty() {
                continue;
            }
            comments.push(Comment {
                id: j.id.to_string(),
                public: !j.private_notes,
                author: j.user.as_ref().map(|u| u.name.clone()),
                created_at: parse_time(&j.created_on, "journal created_on")?,
                text: normalise(j.notes()),
                files: jfiles,
            });
        }
        Ok(Ticket {
            id: issue.id.to_string(),
            number: issue.id.to_string(),
            title: issue.subject.clone(),
            description: normalise(issue.description.as_deref().unwrap_or("")),
            status: issue.status.name.clone(),
            priority: issue.priority.as_ref().map(|p| p.name.clone()),
            queue: Some(queue),
            kind: issue.tracker.as_ref().map(|t| t.name.clone()),
            requester,
            fields,
            created_at: parse_time(&issue.created_on, "issue created_on")?,
            updated_at: parse_time(&issue.updated_on, "issue updated_on")?,
            comments,
        })
    }

    /// What of `want` the issue does not show (names of the differences, no values).
    fn differences(&self, issue: &Issue, want: &Want) -> Vec<String> {
        let mut diff = Vec::new();
        if let Some((id, name)) = &want.status
            && issue.status.id != *id
        {
            diff.push(format!("status '{name}' (it is '{}')", issue.status.name));
        }
        if let Some((id, name)) = &want.priority
            && issue.priority.as_ref().map(|p| p.id) != Some(*id)
        {
            diff.push(format!("priority '{name}'"));
        }
        if let Some((id, name)) = &want.project
            && issue.project.id != *id
        {
            diff.push(format!("project '{name}'"));
        }
        if let Some((id, name)) = &want.tracker
            && issue.tracker.as_ref().map(|t| t.id) != Some(*id)
        {
            diff.push(format!("tracker '{name}'"));
        }
        for (id, value) in &want.fields {
            if issue.field(*id) != *value {
                diff.push(format!("custom field {id}"));
            }
        }
        diff
    }
}

enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

/// Resolved values of a write, to compare with the read-back: (id, name).
#[derive(Default)]
struct Want {
    status: Option<(u64, String)>,
    priority: Option<(u64, String)>,
    project: Option<(u64, String)>,
    tracker: Option<(u64, String)>,
    fields: Vec<(u64, String)>,
}

impl Want {
    fn body(&self, with_status: bool) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if with_status && let Some((id, _)) = &self.status {
            m.insert("status_id".into(), json!(id));
        }
        if let Some((id, _)) = &self.priority {
            m.insert("priority_id".into(), json!(id));
        }
        if let Some((id, _)) = &self.project {
            m.insert("project_id".into(), json!(id));
        }
        if let Some((id, _)) = &self.tracker {
            m.insert("tracker_id".into(), json!(id));
        }
        if !self.fields.is_empty() {
            let cfs: Vec<Value> = self.fields.iter().map(|(id, v)| json!({"id": id, "value": v})).collect();
            m.insert("custom_fields".into(), Value::Array(cfs));
        }
        m
    }
}

impl TicketSystem for Redmine {
    fn kind(&self) -> &'static str {
        SYSTEM
    }

    async fn changed_since(&self, since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let at = since
            .to_offset(time::UtcOffset::UTC)
            .format(&fmt)
            .map_err(|e| protocol(format!("cannot format {since}: {e}")))?;
        let q = [("status_id", "*".to_string()), ("updated_on", format!(">={at}"))];
        let ids: BTreeSet<u64> = self.issues(&q).await?.into_iter().map(|i| i.id).collect();
        tracing::debug!(system = SYSTEM, count = ids.len(), "changed issues");
        Ok(ids.into_iter().map(|i| i.to_string()).collect())
    }

    async fn get(&self, id: &str) -> SystemResult<Ticket> {
        let issue = self.issue(id, "journals,attachments").await?;
        self.to_ticket(issue).await
    }

    async fn find_by_field(&self, field: &str, value: &str) -> SystemResult<Option<TicketId>> {
        let fid = self.field_id(field).await?;
        if value.is_empty() {
            return Ok(None); // an empty value is no value (and not a valid filter)
        }
        let cf = format!("cf_{fid}");
        let (op, v) = (format!("op[{cf}]"), format!("v[{cf}][]"));
        let q = [
            ("f[]", "status_id".to_string()),
            ("op[status_id]", "*".to_string()),
            ("f[]", cf.clone()),
            (op.as_str(), "=".to_string()),
            (v.as_str(), value.to_string()),
        ];
        // The filter may be ignored (a field that is not a filter): check the values.
        let found = self.issues(&q).await?.into_iter().find(|i| i.field(fid) == value).map(|i| i.id.to_string());
        tracing::debug!(system = SYSTEM, field_id = fid, found = found.as_deref(), "find by field");
        Ok(found)
    }

    async fn create(&self, ticket: &NewTicket) -> SystemResult<TicketId> {
        let chars = ticket.title.chars().count();
        if chars > MAX_TITLE_CHARS {
            return Err(SystemError::TooLarge {
                system: SYSTEM,
                what: "title".into(),
                size: chars as u64,
                limit: MAX_TITLE_CHARS as u64,
            });
        }
        let queue = if ticket.queue.trim().is_empty() { self.config.project.as_str() } else { ticket.queue.as_str() };
        let mut want = Want { project: Some((self.project_id(queue).await?, queue.to_string())), ..Want::default() };
        if !ticket.status.trim().is_empty() {
            want.status = Some((self.status_id(&ticket.status).await?, ticket.status.clone()));
        }
        if let Some(p) = &ticket.priority {
            want.priority = Some((self.priority_id(p).await?, p.clone()));
        }
        if let Some(k) = &ticket.kind {
            want.tracker = Some((self.tracker_id(k).await?, k.clone()));
        }
        want.fields = self.custom_fields(&ticket.fields, ticket.requester.as_ref()).await?;
        let mut body = want.body(true);
        body.insert("subject".into(), json!(ticket.title));
        body.insert("description".into(), json!(normalise(&ticket.description)));
        let a = self.call(Method::POST, "/issues.json", &[], Some(Body::Json(json!({ "issue": body })))).await?;
        if a.status != StatusCode::CREATED {
            return Err(a.fail("create issue", None));
        }
        let created: IssueEnvelope = a.json("create issue")?;
        let id = created.issue.id.to_string();
        tracing::debug!(system = SYSTEM, issue = %id, "issue created");
        let mut issue = self.issue(&id, "allowed_statuses").await?;
        // A new issue starts in its tracker's default status: move it with a second write.
        if let Some((sid, sname)) = &want.status
            && issue.status.id != *sid
        {
            let allowed = issue.allowed_statuses.as_ref().is_none_or(|a| a.iter().any(|s| s.id == *sid));
            if !allowed {
                return Err(refused(format!(
                    "issue {id} was created with status '{}': the workflow does not allow '{sname}' from there",
                    issue.status.name
                )));
            }
            let put = json!({"issue": {"status_id": sid}});
            let a = self.call(Method::PUT, &format!("/issues/{id}.json"), &[], Some(Body::Json(put))).await?;
            if !a.status.is_success() {
                return Err(a.fail(&format!("issue {id} created, setting its status"), Some(&id)));
            }
            issue = self.issue(&id, "").await?;
        }
        let diff = self.differences(&issue, &want);
        if !diff.is_empty() {
            return Err(refused(format!("issue {id} was created, but Redmine did not take {}", diff.join(", "))));
        }
        Ok(id)
    }

    async fn update(&self, id: &str, change: &TicketChange) -> SystemResult<()> {
        let n = issue_number(id)?;
        let current = self.issue(id, "allowed_statuses").await?;
        if change.is_empty() {
            return Ok(());
        }
        let mut want = Want::default();
        if let Some(s) = &change.status {
            want.status = Some((self.status_id(s).await?, s.clone()));
        }
        if let Some(p) = &change.priority {
            want.priority = Some((self.priority_id(p).await?, p.clone()));
        }
        if let Some(q) = &change.queue {
            want.project = Some((self.project_id(q).await?, q.clone()));
        }
        if let Some(k) = &change.kind {
            want.tracker = Some((self.tracker_id(k).await?, k.clone()));
        }
        want.fields = self.custom_fields(&change.fields, None).await?;
        // A status the workflow does not offer would be dropped silently while the rest is taken: refuse it
        // before writing anything. (A new project or tracker has its own workflow: the read-back decides.)
        if let Some((sid, sname)) = &want.status
            && current.status.id != *sid
            && want.project.as_ref().is_none_or(|(p, _)| *p == current.project.id)
            && want.tracker.as_ref().is_none_or(|(t, _)| Some(*t) == current.tracker.as_ref().map(|t| t.id))
            && let Some(allowed) = &current.allowed_statuses
            && !allowed.iter().any(|s| s.id == *sid)
        {
            let names: Vec<&str> = allowed.iter().map(|s| s.name.as_str()).collect();
            return Err(refused(format!(
                "issue {id}: the workflow does not allow '{sname}' from '{}' (allowed: {})",
                current.status.name,
                names.join(", ")
            )));
        }
        let put = json!({ "issue": want.body(true) });
        let a = self.call(Method::PUT, &format!("/issues/{n}.json"), &[], Some(Body::Json(put))).await?;
        if !a.status.is_success() {
            return Err(a.fail(&format!("update issue {id}"), Some(id)));
        }
        let issue = self.issue(id, "").await?;
        let diff = self.differences(&issue, &want);
        tracing::debug!(system = SYSTEM, issue = id, status = issue.status.id, refused = diff.len(), "issue updated");
        if diff.is_empty() {
            Ok(())
        } else {
            Err(refused(format!("issue {id}: Redmine did not take {}", diff.join(", "))))
        }
    }

    async fn comment(&self, id: &str, comment: &NewComment) -> SystemResult<String> {
        let n = issue_number(id)?;
        let limit = self.max_file_bytes();
        for f in &comment.files {
            let size = f.content.len() as u64;
            if size > limit {
                return Err(SystemError::TooLarge { system: SYSTEM, what: format!("file {}", f.name), size, limit });
            }
        }
        let text = normalise(&comment.text);
        if text.is_empty() && comment.files.is_empty() {
            return Err(refused("an empty comment"));
        }
        if !comment.public && text.is_empty() {
            return Err(refused("Redmine makes an internal comment without text public"));
        }
        if !comment.public && !comment.files.is_empty() && !self.config.allow_internal_files {
            return Err(refused(
                "Redmine shows every file to everyone who sees the issue: no files on internal comments",
            ));
        }
        let before = self.issue(id, "journals").await?;
        let last = before.journals.iter().map(|j| j.id).max().unwrap_or(0);
        let mut uploads = Vec::new();
        for f in &comment.files {
            let q = [("filename", f.name.clone()), ("content_type", f.media_type.clone())];
            let a = self.call(Method::POST, "/uploads.json", &q, Some(Body::Bytes(f.content.clone()))).await?;
            if a.status != StatusCode::CREATED {
                if a.status == StatusCode::UNPROCESSABLE_ENTITY && a.errors().contains("maximum allowed file size") {
                    return Err(SystemError::TooLarge {
                        system: SYSTEM,
                        what: format!("file {} (Redmine's own limit is lower than the configured one)", f.name),
                        size: f.content.len() as u64,
                        limit,
                    });
                }
                return Err(a.fail("upload a file", None));
            }
            #[derive(Deserialize)]
            struct Up {
                upload: Token,
            }
            #[derive(Deserialize)]
            struct Token {
                token: String,
            }
            let up: Up = a.json("upload")?;
            uploads.push(json!({"token": up.upload.token, "filename": f.name, "content_type": f.media_type}));
        }
        let mut body = serde_json::Map::new();
        body.insert("notes".into(), json!(text));
        body.insert("private_notes".into(), json!(!comment.public));
        if !uploads.is_empty() {
            body.insert("uploads".into(), Value::Array(uploads));
        }
        let a = self
            .call(Method::PUT, &format!("/issues/{n}.json"), &[], Some(Body::Json(json!({ "issue": body }))))
            .await?;
        if !a.status.is_success() {
            return Err(a.fail(&format!("comment on issue {id}"), Some(id)));
        }
        // Find it again: the newest journal after `last` with this text, privacy and number of files.
        let after = self.issue(id, "journals,attachments").await?;
        let ticket = self.to_ticket(after).await?;
        let found = ticket
            .comments
            .iter()
            .rev()
            .filter(|c| c.id.parse::<u64>().is_ok_and(|j| j > last))
            .find(|c| c.text == text && c.public == comment.public && c.files.len() == comment.files.len());
        match found {
            Some(c) => {
                tracing::debug!(system = SYSTEM, issue = id, journal = %c.id, "comment added");
                Ok(c.id.clone())
            }
            None => Err(refused(format!("issue {id}: the comment is not on the issue after writing it"))),
        }
    }

    async fn download(&self, id: &str, file: &FileInfo) -> SystemResult<Vec<u8>> {
        let issue = self.issue(id, "attachments").await?;
        let Some(att) = issue.attachments.iter().find(|a| a.id.to_string() == file.id) else {
            return Err(refused(format!("issue {id} has no file {}", file.id)));
        };
        let a = self.call(Method::GET, &format!("/attachments/download/{}", att.id), &[], None).await?;
        if a.status != StatusCode::OK {
            return Err(a.fail(&format!("download file {}", att.id), None));
        }
        if a.body.len() as u64 != att.filesize {
            return Err(protocol(format!(
                "file {}: {} bytes downloaded, {} listed",
                att.id,
                a.body.len(),
                att.filesize
            )));
        }
        Ok(a.body)
    }

    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        let n = self.names(true).await?;
        let names = |l: &[(u64, String)]| l.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>();
        Ok(Vocabulary {
            statuses: names(&n.statuses),
            priorities: names(&n.priorities),
            queues: names(&n.projects),
            kinds: names(&n.trackers),
            fields: n.fields.keys().cloned().collect(),
            max_file_bytes: Some(self.max_file_bytes()),
            max_title_chars: Some(MAX_TITLE_CHARS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_round_trip() {
        for c in [
            Contact { name: Some("Jörg Ärger".into()), email: Some("j@example.org".into()) },
            Contact { name: None, email: Some("j@example.org".into()) },
            Contact { name: Some("Jörg".into()), email: None },
        ] {
            assert_eq!(text_to_contact(&contact_to_text(&c)), Some(c));
        }
        assert_eq!(text_to_contact("  "), None);
    }

    #[test]
    fn ids_are_digits_only() {
        assert!(issue_number("12").is_ok());
        for bad in ["", "0", "-1", "1/../2", "+3", "1.json"] {
            assert!(matches!(issue_number(bad), Err(SystemError::NotFound { .. })), "{bad}");
        }
    }

    #[test]
    fn line_ends_are_normalised() {
        assert_eq!(normalise("a\r\nb\rc\n"), "a\nb\nc\n");
    }
}
