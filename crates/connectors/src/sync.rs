//! The sync between one ticket system and one SDX node, in both directions, exactly once.
//!
//! **Ticket → SDX** ([`Connector::poll_system`]): the tickets changed since the system cursor are read; a ticket
//! put where the mapping's `[[handover]]` says becomes a case forwarded to that partner; a linked ticket's status
//! change and new public comments (with their files) become changes of the case. Internal notes never leave.
//!
//! **SDX → ticket** ([`Connector::follow_feed`], long-polling the node's change feed): a case forwarded to this
//! organisation becomes a ticket in the mapping's `[incoming]` queue with the SDX case id in the case field; the
//! partner's status changes, journal entries, files and the solution are written into the linked ticket; a
//! conflict is written as an internal note, so the agent whose change lost sees it.
//!
//! **No echo, exactly once.** Per linked ticket the connector keeps a [`Link`] in the node's store (key
//! `ticket:ID`, and `case:UUID` for the way back): the system status and SDX status last synced, the comments
//! and SDX items already handled. A status differing from the link's is a change of that side; what the
//! connector writes into a ticket carries a marker line `[sdx:…]` and is never sent back. Before it writes an SDX
//! item into a ticket, the connector stores the item in the link's `writing` set: after a crash between the write
//! and the link's commit, an item still there is looked for in the ticket (by its marker) before it is written
//! again, so nothing is written twice — and an item not there cannot have been written, so the ticket is not read
//! just to look (most changes into a ticket cost no read of it). What it sends to the node carries an idempotency
//! key derived from the ticket and the link, so a retry after a crash is answered, not applied again. Case ids and
//! journal ids are derived from the ticket, so a repeated forward is the same case.
//!
//! **Nothing is dropped silently.** A value without a mapping, a status the workflow refuses, a refusal by the
//! node: written once as an internal note on the ticket (marker `[sdx:problem:…]`), logged, and kept in the
//! connector's `health` state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use sdx_model::{
    Attachment, Author, Body, Case, CaseId, Category, Close, Coded, ExternalReference, Impact, ItemId, JournalEntry,
    MediaType, OrgKey, Party, PartyRole, PendingReason, Priority, Reject, RejectionReason, Reopen, Requester,
    ResolutionCode, Resolve, ServiceRef, Sha256Hex, Solution, Status, StatusChange, SupportLevel, TicketType,
    Timestamp, Update, Urgency, Visibility,
};

use crate::mapping::{Handover, Mapping};
use crate::node::{NodeClient, NodeError};
use crate::system::{
    Comment, Contact, NewComment, NewFile, NewTicket, SystemError, Ticket, TicketChange, TicketSystem,
};

/// Why a sync step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The ticket system failed.
    #[error(transparent)]
    System(#[from] SystemError),
    /// The node failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Something the connector cannot express (a value without a mapping, a text SDX refuses).
    #[error("{0}")]
    Unsyncable(String),
}

impl SyncError {
    /// Whether trying again later may succeed (a system or the node is down).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::System(e) => e.is_transient(),
            SyncError::Node(e) => e.is_transient(),
            SyncError::Unsyncable(_) => false,
        }
    }
}

/// What pushes leave for the connector: the tickets they named, or "poll" when one named none.
#[derive(Default)]
pub struct Wake {
    notify: tokio::sync::Notify,
    pushed: std::sync::Mutex<Pushed>,
}

#[derive(Default)]
struct Pushed {
    tickets: BTreeSet<String>,
    round: bool,
}

/// More named tickets than this waiting: a whole round instead.
const MAX_PUSHED: usize = 1000;

impl Wake {
    /// A push naming `ticket` (or none: a whole round).
    pub fn push(&self, ticket: Option<String>) {
        if let Ok(mut p) = self.pushed.lock() {
            match ticket {
                Some(t) if p.tickets.len() < MAX_PUSHED => {
                    p.tickets.insert(t);
                }
                _ => p.round = true,
            }
        }
        self.notify.notify_one();
    }

    /// The tickets pushed since the last call, or `None` when a whole round is due.
    fn take(&self) -> Option<BTreeSet<String>> {
        let mut p = self.pushed.lock().ok()?;
        let p = std::mem::take(&mut *p);
        (!p.round).then_some(p.tickets)
    }
}

/// What the connector remembers about one linked ticket (state key `ticket:ID`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// The case.
    pub case_id: Option<CaseId>,
    /// The ticket.
    pub ticket: String,
    /// The ticket's status when last synced (written by the connector or sent by it).
    pub sys_status: String,
    /// The case's status when last synced.
    pub sdx_status: String,
    /// Ticket comments handled (sent, written by the connector, or internal).
    pub comments: BTreeSet<String>,
    /// SDX journal entries, attachments and solutions handled (written into the ticket or made from it).
    pub items: BTreeSet<String>,
    /// Problems reported on the ticket (their markers), so that each is written once.
    pub reported: BTreeSet<String>,
    /// The ticket's priority when last synced (`None` on links from before priorities travelled: taken as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sys_priority: Option<String>,
    /// The case's priority code when last synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdx_priority: Option<String>,
    /// SDX items whose write into the ticket began and is not recorded in `items` yet (stored before the write):
    /// only these can be in the ticket without being in `items`. `None` on a new link and on links from before
    /// this was kept: every item not in `items` is looked for in the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writing: Option<BTreeSet<String>>,
}

impl Link {
    /// A new link of a ticket and its case, both as they are now.
    fn new(t: &Ticket, case: &Case) -> Link {
        Link {
            case_id: Some(case.case_id),
            ticket: t.id.clone(),
            sys_status: t.status.clone(),
            sdx_status: case.status.code().into(),
            sys_priority: t.priority.clone(),
            sdx_priority: Some(case.priority.code().into()),
            ..Link::default()
        }
    }
}

/// The way back: case → ticket (state key `case:UUID`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaseLink {
    ticket: String,
}

/// A linked ticket, read from its system on first use: a case whose change needs nothing written into the
/// ticket, or only SDX items that cannot be there yet (see [`Link::writing`]), costs the ticket system no read.
struct Lazy<'a, S> {
    system: &'a S,
    id: &'a str,
    ticket: Option<Ticket>,
    /// The link's `writing` as it was when this sync began (`None`: every item is in doubt).
    doubt: Option<BTreeSet<String>>,
}

impl<'a, S: TicketSystem> Lazy<'a, S> {
    /// Ticket `id` of `link`, not read yet.
    fn new(system: &'a S, id: &'a str, link: &Link) -> Self {
        Lazy { system, id, ticket: None, doubt: link.writing.clone() }
    }

    /// Whether the ticket carries the marker of SDX item `item` — read only when the item may be there.
    async fn has_item(&mut self, item: &str) -> Result<bool, SystemError> {
        if self.doubt.as_ref().is_some_and(|d| !d.contains(item)) {
            return Ok(false);
        }
        Ok(carries(self.get().await?, item))
    }

    /// The ticket as read by the first call (later writes of this sync are not read back into it).
    async fn get(&mut self) -> Result<&Ticket, SystemError> {
        let t = match self.ticket.take() {
            Some(t) => t,
            None => self.system.get(self.id).await?,
        };
        Ok(self.ticket.insert(t))
    }
}

/// The connector's health (state key `health`): the last problems, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Problems, newest first, at most [`HEALTH_PROBLEMS`].
    pub problems: Vec<Problem>,
}

/// One reported problem.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// When.
    pub at: String,
    /// The ticket, if any.
    pub ticket: Option<String>,
    /// The case, if any.
    pub case_id: Option<CaseId>,
    /// What (no personal data: ids, codes, values of mapped fields).
    pub text: String,
}

/// Problems kept in the health state.
pub const HEALTH_PROBLEMS: usize = 50;

/// How long one long poll of the change feed waits (a connector's push channel).
const FEED_WAIT: Duration = Duration::from_secs(25);

/// How far back the first poll of a new connector looks.
const FIRST_LOOKBACK: Duration = Duration::from_secs(600);

/// A marker line written into ticket texts by the connector.
pub fn marker(id: &str) -> String {
    format!("[sdx:{id}]")
}

fn has_marker(text: &str) -> bool {
    text.contains("[sdx:")
}

/// Whether a comment of ticket `t` carries the marker of item `id`.
fn carries(t: &Ticket, id: &str) -> bool {
    let m = marker(id);
    t.comments.iter().any(|c| c.text.contains(&m))
}

/// A UUID derived from `parts` (SHA-256, formatted as a version 8 UUID): the same ticket always gives the same
/// case id and journal ids.
fn derived_uuid(parts: &[&str]) -> uuid::Uuid {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\u{1f}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b)
}

fn ts(t: OffsetDateTime) -> Timestamp {
    Timestamp::from_offset_date_time(t)
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// Impact and urgency giving `p`, preferring `impact`.
fn matrix_for(p: Priority, impact: Impact) -> (Impact, Urgency) {
    let urgencies = [Urgency::High, Urgency::Medium, Urgency::Low];
    if let Some(u) = urgencies.iter().find(|u| Priority::from_matrix(impact, **u) == p) {
        return (impact, *u);
    }
    for i in [Impact::High, Impact::Medium, Impact::Low] {
        if let Some(u) = urgencies.iter().find(|u| Priority::from_matrix(i, **u) == p) {
            return (i, *u);
        }
    }
    (impact, Urgency::Medium)
}

/// Cut `s` to at most `max` characters.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// One connector: a ticket system, a node, a mapping.
pub struct Connector<S: TicketSystem> {
    name: String,
    me: OrgKey,
    system: S,
    node: NodeClient,
    mapping: Mapping,
    case_field: String,
    poll: Duration,
    /// Held while one ticket is synced in either direction: a status the feed side writes into a ticket and the
    /// link that records it are one step for the polling side, which reads the ticket under it too: otherwise it
    /// could compare the written status with the link from before, or the status from before with the link that
    /// records the write, and send either back as an agent's change.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// Woken by a push from the system (see [`crate::push`]): sync the named tickets (or poll) now instead of at
    /// the end of the interval.
    wake: std::sync::Arc<Wake>,
}

impl<S: TicketSystem> Connector<S> {
    /// A connector named `name` (its state namespace and idempotency key prefix) for organisation `me`.
    pub fn new(
        name: &str,
        me: OrgKey,
        system: S,
        node: NodeClient,
        mapping: Mapping,
        case_field: &str,
        poll: Duration,
    ) -> Self {
        Connector {
            name: name.into(),
            me,
            system,
            node,
            mapping,
            case_field: case_field.into(),
            poll,
            one_at_a_time: tokio::sync::Mutex::new(()),
            wake: Default::default(),
        }
    }

    /// What a push wakes: the tickets it names are synced at once (or right after the running round); a push
    /// that names none starts a whole round.
    pub fn waker(&self) -> std::sync::Arc<Wake> {
        self.wake.clone()
    }

    /// The connector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ticket system.
    pub fn system(&self) -> &S {
        &self.system
    }

    /// Run until `stop` resolves: poll the system, follow the feed (long poll of one polling interval), repeat.
    /// Transient failures are retried on the next round; nothing is lost because the cursors only move past
    /// what was handled.
    ///
    /// The two directions run side by side: the system is polled every `poll_interval_ms` (and at once when a
    /// push wakes it, see [`Connector::waker`]), the feed is long-polled and written at once. One ticket is
    /// synced at a time, its read and its link under the same lock, so a status the connector writes is never
    /// taken for an agent's change.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        let system = async {
            loop {
                let t0 = tokio::time::Instant::now();
                if let Err(e) = self.poll_system().await {
                    tracing::warn!(connector = %self.name, error = %e, "ticket system round failed; retrying");
                }
                // Until the next round: the tickets pushes name, one by one (the cursor stays for the round).
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t0 + self.poll) => break,
                        _ = self.wake.notify.notified() => {}
                    }
                    let Some(tickets) = self.wake.take() else { break };
                    if let Err(e) = self.sync_pushed(tickets).await {
                        tracing::warn!(connector = %self.name, error = %e, "pushed ticket failed; polling");
                        break;
                    }
                }
            }
        };
        let feed = async {
            loop {
                if let Err(e) = self.follow_feed(FEED_WAIT).await {
                    tracing::warn!(connector = %self.name, error = %e, "change feed round failed; retrying");
                    tokio::time::sleep(self.poll).await;
                }
            }
        };
        tokio::select! {
            _ = stop => {}
            _ = system => {}
            _ = feed => {}
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // Ticket → SDX

    /// One round of ticket → SDX: every ticket changed since the system cursor. The cursor moves only past
    /// tickets handled (or reported); a transient failure stops the round where it happened.
    pub async fn poll_system(&self) -> Result<usize, SyncError> {
        let cursor = self.node.state::<i64>("cursor.system").await?;
        let since = match &cursor {
            Some(c) => OffsetDateTime::from_unix_timestamp(c.value).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            None => OffsetDateTime::now_utc() - FIRST_LOOKBACK,
        };
        let ids = self.system.changed_since(since).await?;
        let mut newest = since;
        let mut handled = 0;
        for id in ids {
            let Some((updated_at, synced)) = self.pull(&id).await? else { continue };
            newest = newest.max(updated_at);
            handled += usize::from(synced);
        }
        if newest > since || cursor.is_none() {
            self.node.put_state("cursor.system", &newest.unix_timestamp(), None).await?;
        }
        Ok(handled)
    }

    /// The tickets a push named: each read and synced as in a round (a problem is reported on the ticket).
    async fn sync_pushed(&self, tickets: BTreeSet<String>) -> Result<(), SyncError> {
        for id in tickets {
            self.pull(&id).await?;
        }
        Ok(())
    }

    /// Read ticket `id` and bring its changes to SDX; a problem that is not transient is reported on the ticket.
    /// Returns the ticket's change time and whether it was synced (`None`: the ticket is gone).
    ///
    /// The read is made under the one-at-a-time lock: a ticket read before the feed side wrote a status into
    /// it, compared with the link stored after that write, would show the old status as an agent's change.
    async fn pull(&self, id: &str) -> Result<Option<(OffsetDateTime, bool)>, SyncError> {
        let _one = self.one_at_a_time.lock().await;
        let t = match self.system.get(id).await {
            Ok(t) => t,
            Err(SystemError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match self.sync_ticket(&t).await {
            Ok(()) => Ok(Some((t.updated_at, true))),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                self.report_on(&t, &e.to_string()).await?;
                Ok(Some((t.updated_at, false)))
            }
        }
    }

    /// Bring one ticket's changes to SDX; the caller holds the one-at-a-time lock and read `t` under it.
    async fn sync_ticket(&self, t: &Ticket) -> Result<(), SyncError> {
        let key = format!("ticket:{}", t.id);
        match self.node.state::<Link>(&key).await? {
            Some(link) => self.changes_from_ticket(t, link.value, link.version).await,
            None => {
                if let Some(case_id) = t.fields.get(&self.case_field).and_then(|c| CaseId::parse(c.trim()).ok()) {
                    // Linked in the system but not here (a crash before the link was stored): relink.
                    return self.relink(t, case_id).await;
                }
                match self.mapping.handover_for(t.queue.as_deref(), &t.fields) {
                    Some(h) => self.forward(t, h).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Hand a ticket over: create the case (id derived from the ticket), forward it, mark the ticket, link.
    async fn forward(&self, t: &Ticket, h: &Handover) -> Result<(), SyncError> {
        let partner = OrgKey::parse(&h.partner).map_err(|e| SyncError::Unsyncable(e.to_string()))?;
        let case = self.case_from_ticket(t, partner, &h.partner_name).await?;
        let key = format!("{}:forward:{}", self.name, t.id);
        let case = self.node.create_case(&case, None, &key).await?;
        self.system.update(&t.id, &self.case_field_change(case.case_id)).await?;
        let mut link = Link::new(t, &case);
        link.comments.extend(t.comments.iter().map(|c| c.id.clone()));
        link.items.extend(case.journal.iter().map(|e| e.id.to_string()));
        link.items.extend(case.attachments.iter().map(|a| a.id.to_string()));
        self.store_link(&link, 0).await?;
        tracing::info!(connector = %self.name, ticket = %t.id, case = %case.case_id, "ticket handed over");
        Ok(())
    }

    fn case_field_change(&self, id: CaseId) -> TicketChange {
        TicketChange { fields: BTreeMap::from([(self.case_field.clone(), id.to_string())]), ..TicketChange::default() }
    }

    /// The case a ticket becomes.
    async fn case_from_ticket(&self, t: &Ticket, partner: OrgKey, partner_name: &str) -> Result<Case, SyncError> {
        let m = &self.mapping;
        let d = &m.defaults;
        let created = ts(t.created_at);
        let case_id = CaseId::from_uuid(derived_uuid(&[&self.name, "case", &t.id, &created.to_string()]));
        let ticket_type = match t.kind.as_deref().map(|k| m.ticket_type_in(k)) {
            Some(Ok(tt)) => tt,
            _ => TicketType::parse(&d.ticket_type).unwrap_or(TicketType::Incident),
        };
        let impact = Impact::parse(&d.impact).unwrap_or(Impact::Medium);
        let (impact, urgency, priority) = match t.priority.as_deref().map(|p| m.priority_in(p)) {
            Some(Ok(p)) => {
                let (i, u) = matrix_for(p, impact);
                (i, u, p)
            }
            Some(Err(e)) if m.unmapped == crate::mapping::Unmapped::Error => {
                return Err(SyncError::Unsyncable(e.to_string()));
            }
            _ => {
                let u = Urgency::parse(&d.urgency).unwrap_or(Urgency::Medium);
                (impact, u, Priority::from_matrix(impact, u))
            }
        };
        let mut journal = Vec::new();
        let mut attachments = Vec::new();
        for c in t.comments.iter().filter(|c| c.public && !has_marker(&c.text)) {
            journal.push(self.entry_from_comment(t, c));
            attachments.extend(self.attachments_from_comment(t, c).await?);
        }
        let me_name = d.organisation_name.clone().unwrap_or_else(|| self.me.to_string());
        let description = if t.description.trim().is_empty() { t.title.clone() } else { t.description.clone() };
        let limits = sdx_model::rules::limits::MAX_TEXT_CHARS;
        if description.chars().count() > limits {
            return Err(SyncError::Unsyncable(format!(
                "the ticket's description has {} characters; SDX takes at most {limits}: shorten it or attach it as a file",
                description.chars().count()
            )));
        }
        Ok(Case {
            case_id,
            revision: 1,
            references: vec![ExternalReference {
                owner: self.me.clone(),
                system: Some(self.system.kind().into()),
                id: t.number.clone(),
            }],
            ticket_type,
            status: Status::New,
            pending_reason: None,
            status_history: vec![StatusChange {
                status: Status::New,
                pending_reason: None,
                changed_at: created,
                changed_by: self.me.clone(),
                reason: None,
            }],
            impact,
            urgency,
            priority,
            category: Category {
                service: match m.service_of_ticket(t.queue.as_deref(), t.kind.as_deref(), &t.fields) {
                    Some(s) if m.travel.service => Some(s.service_ref()),
                    _ => (d.leika_key.is_some() || d.service_name.is_some()).then(|| ServiceRef {
                        leika_key: d.leika_key.as_deref().and_then(|k| sdx_model::LeikaKey::parse(k).ok()),
                        ozg_id: None,
                        name: d.service_name.clone(),
                    }),
                },
                symptom: None,
            },
            region: None,
            support_level: SupportLevel::SecondLevel,
            channel: None,
            parties: vec![
                Party { role: PartyRole::Mila, organisation: self.me.clone(), name: me_name, contact: None },
                Party {
                    role: PartyRole::Bela,
                    organisation: partner.clone(),
                    name: partner_name.into(),
                    contact: None,
                },
            ],
            originator: self.me.clone(),
            assignee: partner,
            requester: t.requester.as_ref().filter(|_| m.travel.requester).map(|c| Requester {
                name: c.name.clone(),
                email: c.email.clone(),
                phone: None,
                language: None,
            }),
            subject: cut(&t.title, sdx_model::rules::limits::MAX_SUBJECT_CHARS),
            description,
            created_at: created,
            updated_at: now(),
            journal,
            attachments,
            solution: None,
            related_cases: Vec::new(),
            service_level: None,
        })
    }

    fn entry_from_comment(&self, t: &Ticket, c: &Comment) -> JournalEntry {
        JournalEntry {
            id: ItemId::from_uuid(derived_uuid(&[&self.name, "comment", &t.id, &c.id])),
            visibility: if c.public { Visibility::Public } else { Visibility::Internal },
            author: Author { organisation: self.me.clone(), name: c.author.clone() },
            created_at: ts(c.created_at),
            text: c.text.clone(),
        }
    }

    async fn attachments_from_comment(&self, t: &Ticket, c: &Comment) -> Result<Vec<Attachment>, SyncError> {
        let mut out = Vec::new();
        for f in c.files.iter().filter(|_| self.mapping.travel.files) {
            if f.size > sdx_model::rules::limits::MAX_INLINE_ATTACHMENT_BYTES {
                return Err(SyncError::Unsyncable(format!(
                    "file {} has {} bytes; SDX carries at most {} inline",
                    f.name,
                    f.size,
                    sdx_model::rules::limits::MAX_INLINE_ATTACHMENT_BYTES
                )));
            }
            let bytes = self.system.download(&t.id, f).await?;
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
            let media_type = MediaType::parse(&f.media_type)
                .or_else(|_| MediaType::parse("application/octet-stream"))
                .map_err(|e| SyncError::Unsyncable(e.to_string()))?;
            out.push(Attachment {
                id: ItemId::from_uuid(derived_uuid(&[&self.name, "file", &t.id, &f.id])),
                file_name: cut(&f.name, sdx_model::rules::limits::MAX_SHORT_CHARS),
                media_type,
                size: bytes.len() as u64,
                sha256: Sha256Hex::parse(hex::encode(digest.as_ref()))
                    .map_err(|e| SyncError::Unsyncable(e.to_string()))?,
                content: Some(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                uri: None,
                added_by: self.me.clone(),
                added_at: ts(c.created_at),
            });
        }
        Ok(out)
    }

    /// A ticket that names a case in its case field but has no link here: link it to the case as it is.
    async fn relink(&self, t: &Ticket, case_id: CaseId) -> Result<(), SyncError> {
        let Some(view) = self.node.case(case_id).await? else {
            // Not ours (another installation's ticket, or a case field typed by hand): health only, the ticket
            // is left alone.
            let text = format!("the ticket names case {case_id}, which this node does not hold");
            return self.health(Some(&t.id), Some(case_id), &text).await.map(|_| ());
        };
        let case = &view.case;
        let mut link = Link::new(t, case);
        // Comments already in the case (made from this ticket, or written into it with a marker) are handled.
        for c in &t.comments {
            let id = ItemId::from_uuid(derived_uuid(&[&self.name, "comment", &t.id, &c.id]));
            if has_marker(&c.text) || !c.public || case.journal.iter().any(|e| e.id == id) {
                link.comments.insert(c.id.clone());
            }
        }
        for e in &case.journal {
            if carries(t, &e.id.to_string()) || e.author.organisation == self.me {
                link.items.insert(e.id.to_string());
            }
        }
        self.store_link(&link, 0).await?;
        tracing::info!(connector = %self.name, ticket = %t.id, case = %case_id, "ticket relinked");
        Ok(())
    }

    /// A linked ticket's changes: new public comments (with files), then its status.
    async fn changes_from_ticket(&self, t: &Ticket, mut link: Link, version: u64) -> Result<(), SyncError> {
        let Some(case_id) = link.case_id else { return Ok(()) };
        let before = link.clone();
        for c in &t.comments {
            if link.comments.contains(&c.id) {
                continue;
            }
            if c.public && !has_marker(&c.text) {
                let attachments = self.attachments_from_comment(t, c).await?;
                let entry = self.entry_from_comment(t, c);
                let body = Body::Update(Update { journal: vec![entry.clone()], attachments, ..Update::default() });
                let key = format!("{}:comment:{}:{}", self.name, t.id, c.id);
                tracing::debug!(connector = %self.name, ticket = %t.id, comment = %c.id, "sending a comment");
                match self.node.change(case_id, &body, &key).await {
                    Ok(_) => {}
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(e) => {
                        let text = format!("comment {} was not sent to SDX: {e}", c.id);
                        self.problem(t, Some(case_id), &mut link, &text).await?;
                    }
                }
                link.items.insert(entry.id.to_string());
            }
            link.comments.insert(c.id.clone());
        }
        if t.status != link.sys_status {
            let view = self.node.case(case_id).await?;
            let originator = view.as_ref().is_some_and(|v| v.case.originator == self.me);
            match self.mapping.status_in(&t.status).map(|s| for_role(s, originator)) {
                Ok(to) if to.code() != link.sdx_status => {
                    let current = view.as_ref().map(|v| v.case.status);
                    if current != Some(to) {
                        let body = self.body_for_status(to, t);
                        // The link's version and the status name this attempt: a retry after a lost commit reads
                        // the same version (the node answers the first result); once the link moved on, the case's
                        // status decides above.
                        let key = format!("{}:status:{}:{version}:{}", self.name, t.id, to.code());
                        tracing::debug!(connector = %self.name, ticket = %t.id, to = %to, "sending a status");
                        match self.node.change(case_id, &body, &key).await {
                            Ok(case) => link.sdx_status = case.status.code().into(),
                            Err(e) if e.is_transient() => return Err(e.into()),
                            Err(e) => {
                                let text = format!("the status `{}` was not sent to SDX: {e}", t.status);
                                self.problem(t, Some(case_id), &mut link, &text).await?;
                            }
                        }
                    } else {
                        link.sdx_status = to.code().into();
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let text = format!("{e}: the status change was not sent to SDX; add it to the mapping");
                    self.problem(t, Some(case_id), &mut link, &text).await?;
                }
            }
            link.sys_status = t.status.clone();
        }
        self.priority_from_ticket(t, case_id, &mut link, version).await?;
        if link != before {
            self.store_link(&link, version).await?;
        }
        Ok(())
    }

    /// A priority an agent set on a linked ticket: a change of the case's priority (impact kept, urgency from
    /// the matrix) when this organisation is the assignee; reported when it is not (the assignee classifies).
    async fn priority_from_ticket(
        &self,
        t: &Ticket,
        case_id: CaseId,
        link: &mut Link,
        version: u64,
    ) -> Result<(), SyncError> {
        let Some(now) = t.priority.clone() else { return Ok(()) };
        if link.sys_priority.is_none() || !self.mapping.travel.priority {
            link.sys_priority = Some(now);
            return Ok(());
        }
        if link.sys_priority.as_deref() == Some(now.as_str()) {
            return Ok(());
        }
        let p = match self.mapping.priority_in(&now) {
            Ok(p) => p,
            Err(e) => {
                let text = format!("{e}: the priority change was not sent to SDX; add it to the mapping");
                self.problem(t, Some(case_id), link, &text).await?;
                link.sys_priority = Some(now);
                return Ok(());
            }
        };
        let Some(view) = self.node.case(case_id).await? else { return Ok(()) };
        let case = &view.case;
        if case.priority != p {
            if case.assignee != self.me {
                // The ticket goes back to the case's priority (both sides show one state); the note says why.
                let back = self.mapping.priority_out(case.priority);
                let text = format!(
                    "the priority `{now}` was not sent: in SDX the partner ({}) sets the priority; the ticket is set \
                     back to `{}`",
                    case.assignee,
                    back.unwrap_or(case.priority.code())
                );
                self.problem(t, Some(case_id), link, &text).await?;
                if let Some(back) = back {
                    let change = TicketChange { priority: Some(back.into()), ..TicketChange::default() };
                    self.system.update(&t.id, &change).await?;
                    link.sys_priority = Some(back.into());
                    link.sdx_priority = Some(case.priority.code().into());
                    return Ok(());
                }
            } else {
                let (impact, urgency) = matrix_for(p, case.impact);
                let body = Body::Update(Update {
                    impact: Some(impact),
                    urgency: Some(urgency),
                    priority: Some(p),
                    ..Update::default()
                });
                let key = format!("{}:priority:{}:{version}:{}", self.name, t.id, p.code());
                match self.node.change(case_id, &body, &key).await {
                    Ok(case) => link.sdx_priority = Some(case.priority.code().into()),
                    Err(e) if e.is_transient() => return Err(e.into()),
                    Err(e) => {
                        let text = format!("the priority `{now}` was not sent to SDX: {e}");
                        self.problem(t, Some(case_id), link, &text).await?;
                    }
                }
            }
        } else {
            link.sdx_priority = Some(p.code().into());
        }
        link.sys_priority = Some(now);
        Ok(())
    }

    /// The message that takes a case to `to`, made from a ticket.
    fn body_for_status(&self, to: Status, t: &Ticket) -> Body {
        let last_public =
            t.comments.iter().rev().find(|c| c.public).map(|c| strip_markers(&c.text)).filter(|s| !s.trim().is_empty());
        match to {
            Status::Resolved => Body::Resolve(Resolve {
                revision: 0,
                solution: Solution {
                    code: ResolutionCode::parse(&self.mapping.defaults.resolution_code)
                        .unwrap_or(ResolutionCode::Fixed),
                    text: last_public.unwrap_or_else(|| "Gelöst.".into()),
                    resolved_at: now(),
                    resolved_by: self.me.clone(),
                },
                journal: Vec::new(),
            }),
            Status::Closed => Body::Close(Close { revision: 0, closure_code: None, note: None }),
            Status::Reopened => Body::Reopen(Reopen {
                revision: 0,
                reason: last_public.unwrap_or_else(|| "Die Lösung wurde nicht angenommen.".into()),
            }),
            Status::Rejected => Body::Reject(Reject {
                revision: 0,
                reason: RejectionReason::NotResponsible,
                text: None,
                suggested_assignee: None,
            }),
            Status::Pending => Body::Update(Update {
                status: Some(Status::Pending),
                pending_reason: Some(PendingReason::WaitingForRequester),
                ..Update::default()
            }),
            other => Body::Update(Update { status: Some(other), ..Update::default() }),
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // SDX → ticket

    /// One round of SDX → ticket: the feed's events after the feed cursor (waiting up to `wait` for one), each
    /// case brought into its ticket once, conflicts written as internal notes. The cursor moves past a case only
    /// when it was handled (or reported).
    pub async fn follow_feed(&self, wait: Duration) -> Result<usize, SyncError> {
        let cursor = self.node.state::<String>("cursor.feed").await?;
        // Cases that failed before are tried again every round until they succeed (nothing is dropped).
        let retry = self.node.state::<Vec<CaseId>>("retry").await?;
        let wait = if retry.as_ref().is_some_and(|r| !r.value.is_empty()) { wait.min(self.poll) } else { wait };
        let (events, next) = self.node.events(cursor.as_ref().map(|c| c.value.as_str()), wait).await?;
        if events.is_empty() && retry.as_ref().is_none_or(|r| r.value.is_empty()) {
            return Ok(0);
        }
        let mut failed: Vec<CaseId> = Vec::new();
        let mut cases: Vec<CaseId> = retry.as_ref().map(|r| r.value.clone()).unwrap_or_default();
        let mut conflicts: BTreeMap<CaseId, Vec<(String, String)>> = BTreeMap::new();
        for e in &events {
            if !cases.contains(&e.case_id) {
                cases.push(e.case_id);
            }
            if e.kind == "conflict" {
                conflicts.entry(e.case_id).or_default().push((e.cursor.clone(), e.detail.clone()));
            }
        }
        for id in &cases {
            match self.sync_case(*id, conflicts.get(id).map(Vec::as_slice).unwrap_or_default()).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    if self.health(None, Some(*id), &e.to_string()).await? {
                        self.node.report(*id, &format!("connector {}: {e}", self.name)).await?;
                    }
                    failed.push(*id);
                }
            }
        }
        if retry.as_ref().map_or(!failed.is_empty(), |r| r.value != failed) {
            self.node.put_state("retry", &failed, None).await?;
        }
        self.node.put_state("cursor.feed", &next, None).await?;
        Ok(cases.len() - failed.len())
    }

    /// Bring one case's state into its ticket (creating the ticket for a case forwarded to us).
    /// `conflicts` are the feed's conflict events of the case: (cursor, detail).
    pub async fn sync_case(&self, case_id: CaseId, conflicts: &[(String, String)]) -> Result<(), SyncError> {
        let _one = self.one_at_a_time.lock().await;
        let Some(view) = self.node.case(case_id).await? else { return Ok(()) };
        let case = &view.case;
        let ticket = match self.node.state::<CaseLink>(&format!("case:{case_id}")).await? {
            Some(l) => l.value.ticket,
            None if case.assignee == self.me && case.originator != self.me => return self.receive(case).await,
            None => return Ok(()),
        };
        let key = format!("ticket:{ticket}");
        let Some(stored) = self.node.state::<Link>(&key).await? else { return Ok(()) };
        let (mut link, mut version) = (stored.value, stored.version);
        let before = link.clone();
        // Most feed events (receipts, this side's own changes coming back) need nothing written: the ticket is
        // read only when something is, and once.
        let mut t = Lazy::new(&self.system, &ticket, &link);
        tracing::debug!(connector = %self.name, %ticket, case = %case_id, status = %case.status, "case into ticket");
        self.write_case_items(&mut t, case, &mut link, &mut version).await?;
        for (cursor, detail) in conflicts {
            // The event's cursor names it: handled again after a failure, it is written once.
            let id = format!("conflict:{cursor}");
            let text = format!(
                "SDX: Gleichzeitige Änderungen an diesem Fall. {detail}\nDer Fall gilt in dem Stand, der gewonnen hat; \
                 eine verlorene Änderung bitte prüfen und ggf. erneut vornehmen.\n{}",
                marker(&id)
            );
            self.write_once(
                &mut t,
                &mut link,
                &mut version,
                &id,
                NewComment { public: false, text, files: Vec::new() },
            )
            .await?;
        }
        if case.status.code() != link.sdx_status {
            let target = self.mapping.status_out(case.status).map_err(|e| SyncError::Unsyncable(e.to_string()))?;
            let t = t.get().await?;
            if t.status != target {
                match self.set_status(&t.id, target).await {
                    Ok(()) => link.sys_status = target.into(),
                    Err(SystemError::Refused { detail, .. }) => {
                        let text = format!("the SDX status `{}` (`{target}`) could not be set: {detail}", case.status);
                        self.problem(t, Some(case_id), &mut link, &text).await?;
                        link.sys_status = t.status.clone();
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                link.sys_status = target.into();
            }
            link.sdx_status = case.status.code().into();
        }
        self.priority_into_ticket(&mut t, case, &mut link).await?;
        if link != before {
            self.store_link(&link, version).await?;
        }
        Ok(())
    }

    /// The case's priority into the ticket when it changed in SDX (the assignee classified the case).
    async fn priority_into_ticket(&self, t: &mut Lazy<'_, S>, case: &Case, link: &mut Link) -> Result<(), SyncError> {
        let code = case.priority.code();
        if link.sdx_priority.as_deref() == Some(code) {
            return Ok(());
        }
        let t = t.get().await?;
        let target = self.mapping.priority_out(case.priority).filter(|_| self.mapping.travel.priority);
        if link.sdx_priority.is_none() || target.is_none() {
            link.sdx_priority = Some(code.into());
            link.sys_priority = t.priority.clone();
            return Ok(());
        }
        let target = target.unwrap_or_default();
        if t.priority.as_deref() != Some(target) {
            let change = TicketChange { priority: Some(target.into()), ..TicketChange::default() };
            match self.system.update(&t.id, &change).await {
                Ok(()) => {}
                Err(SystemError::Refused { detail, .. }) => {
                    let text = format!("the SDX priority `{code}` (`{target}`) could not be set: {detail}");
                    self.problem(t, Some(case.case_id), link, &text).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        link.sys_priority = Some(target.into());
        link.sdx_priority = Some(code.into());
        Ok(())
    }

    /// Set a status, over the mapping's path when the workflow refuses the direct change.
    async fn set_status(&self, ticket: &str, target: &str) -> Result<(), SystemError> {
        let change = |s: &str| TicketChange { status: Some(s.into()), ..TicketChange::default() };
        match self.system.update(ticket, &change(target)).await {
            Err(SystemError::Refused { .. }) if self.mapping.status_path(target).is_some() => {
                for step in self.mapping.status_path(target).unwrap_or_default() {
                    self.system.update(ticket, &change(step)).await?;
                }
                Ok(())
            }
            r => r,
        }
    }

    /// The partner's journal entries, files and the solution, written into the ticket once each.
    async fn write_case_items(
        &self,
        t: &mut Lazy<'_, S>,
        case: &Case,
        link: &mut Link,
        version: &mut u64,
    ) -> Result<(), SyncError> {
        for e in &case.journal {
            let id = e.id.to_string();
            if link.items.contains(&id) || e.author.organisation == self.me {
                continue;
            }
            let who = e.author.name.clone().unwrap_or_else(|| e.author.organisation.to_string());
            let text = format!("{who} ({}, {}):\n{}\n{}", e.author.organisation, e.created_at, e.text, marker(&id));
            let public = e.visibility == Visibility::Public;
            self.write_once(t, link, version, &id, NewComment { public, text, files: Vec::new() }).await?;
        }
        for a in &case.attachments {
            let id = a.id.to_string();
            if link.items.contains(&id) || a.added_by == self.me {
                continue;
            }
            if !self.mapping.travel.files {
                link.items.insert(id);
                continue;
            }
            let Some(content) = a.content.as_deref() else {
                link.items.insert(id);
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(|e| SyncError::Unsyncable(format!("attachment {id}: {e}")))?;
            let file = NewFile { name: a.file_name.clone(), media_type: a.media_type.to_string(), content: bytes };
            let text = format!("Anhang von {} ({}): {}\n{}", a.added_by, a.added_at, a.file_name, marker(&id));
            match self.write_once(t, link, version, &id, NewComment { public: true, text, files: vec![file] }).await {
                Err(SyncError::System(SystemError::TooLarge { what, size, limit, .. })) => {
                    let text = format!(
                        "SDX: Der Anhang {what} ({size} Bytes) ist größer als dieses System annimmt ({limit} Bytes); \
                         er liegt im SDX-Fall {} vor.",
                        case.case_id
                    );
                    self.problem(t.get().await?, Some(case.case_id), link, &text).await?;
                    link.items.insert(id);
                }
                r => r?,
            }
        }
        if let Some(s) = &case.solution {
            let id = format!("solution:{}", s.resolved_at);
            if !link.items.contains(&id) && s.resolved_by != self.me {
                let text = format!("Lösung ({}, {}):\n{}\n{}", s.code, s.resolved_by, s.text, marker(&id));
                self.write_once(t, link, version, &id, NewComment { public: true, text, files: Vec::new() }).await?;
            }
        }
        Ok(())
    }

    /// Write SDX item `id` as `comment` (whose text carries `marker(id)`) unless the ticket has it already;
    /// remember `id` as handled. The item goes into the link's `writing` set, stored, before the write (see
    /// [`Link::writing`]).
    async fn write_once(
        &self,
        t: &mut Lazy<'_, S>,
        link: &mut Link,
        version: &mut u64,
        id: &str,
        comment: NewComment,
    ) -> Result<(), SyncError> {
        if !t.has_item(id).await? {
            link.writing.get_or_insert_default().insert(id.to_string());
            *version = self.put_link(link, *version).await?;
            link.comments.insert(self.system.comment(t.id, &comment).await?);
        }
        link.items.insert(id.to_string());
        if let Some(w) = &mut link.writing {
            w.remove(id);
        }
        Ok(())
    }

    /// Add `comment` (whose text carries `marker(id)`) unless the ticket has that marker already; the new
    /// comment's id.
    async fn comment_once(&self, t: &Ticket, id: &str, comment: NewComment) -> Result<Option<String>, SyncError> {
        if carries(t, id) {
            return Ok(None);
        }
        Ok(Some(self.system.comment(&t.id, &comment).await?))
    }

    /// Note a problem on a ticket, once (an internal note marked `[sdx:problem:…]`, named by the text); the new
    /// note's id.
    async fn note_problem(&self, t: &Ticket, text: &str) -> Result<Option<String>, SyncError> {
        let id = problem_id(text);
        let note =
            NewComment { public: false, text: format!("SDX-Connector: {text}\n{}", marker(&id)), files: Vec::new() };
        self.comment_once(t, &id, note).await
    }

    /// A case forwarded to this organisation: create its ticket (or find the one created before a crash), write
    /// the journal into it, link, and tell the partner our ticket number.
    async fn receive(&self, case: &Case) -> Result<(), SyncError> {
        let m = &self.mapping;
        let id = case.case_id.to_string();
        let status = m.status_out(case.status).map_err(|e| SyncError::Unsyncable(e.to_string()))?;
        let mut shortened = false;
        let ticket = match self.system.find_by_field(&self.case_field, &id).await? {
            Some(t) => t,
            None => {
                let service = case.category.service.as_ref().filter(|_| m.travel.service);
                let place = service.and_then(|s| m.service_for_case(s));
                let mut fields = BTreeMap::from([(self.case_field.clone(), id.clone())]);
                if let Some((f, v)) = place.and_then(|p| p.field.clone().zip(p.value.clone())) {
                    fields.insert(f, v);
                }
                let new = NewTicket {
                    title: case.subject.clone(),
                    description: case.description.clone(),
                    status: status.into(),
                    priority: m.priority_out(case.priority).map(str::to_string),
                    queue: place.and_then(|p| p.queue.clone()).unwrap_or_else(|| m.incoming.queue.clone()),
                    kind: place
                        .and_then(|p| p.kind.clone())
                        .or_else(|| m.ticket_type_out(case.ticket_type).map(str::to_string)),
                    requester: case
                        .requester
                        .as_ref()
                        .filter(|_| m.travel.requester)
                        .map(|r| Contact { name: r.name.clone(), email: r.email.clone() }),
                    fields,
                };
                match self.system.create(&new).await {
                    Err(SystemError::TooLarge { what, limit, .. }) if what.starts_with("title") => {
                        // Keep the whole subject in the description and a shortened one as the title; the agent
                        // is told below.
                        let max = self.system.vocabulary().await.ok().and_then(|v| v.max_title_chars).unwrap_or(50);
                        let short = format!("{}…", cut(&case.subject, max.saturating_sub(1).min(limit as usize)));
                        let full = format!("Betreff: {}\n\n{}", case.subject, case.description);
                        let created = self.system.create(&NewTicket { title: short, description: full, ..new }).await?;
                        shortened = true;
                        created
                    }
                    r => r?,
                }
            }
        };
        let created = self.system.get(&ticket).await?;
        // No comment of the ticket is taken as handled here: the connector's own carry markers, and an agent may
        // have answered in the moment since the ticket was created (sent with the next round). The ticket may be
        // one found after a crash: every item is looked for in it (a new link's `writing` is `None`).
        let mut link = Link::new(&created, case);
        let mut version = self.node.state::<Link>(&format!("ticket:{ticket}")).await?.map_or(0, |l| l.version);
        let mut t = Lazy::new(&self.system, &ticket, &link);
        t.ticket = Some(created);
        self.write_case_items(&mut t, case, &mut link, &mut version).await?;
        let t = t.get().await?;
        if shortened {
            let text = "the case's subject is longer than this system's titles take: the title is shortened, the \
                        whole subject is at the top of the description";
            self.problem(t, Some(case.case_id), &mut link, text).await?;
        }
        self.node.put_state(&format!("case:{id}"), &CaseLink { ticket: ticket.clone() }, None).await?;
        self.store_link(&link, version).await?;
        let reference =
            ExternalReference { owner: self.me.clone(), system: Some(self.system.kind().into()), id: t.number.clone() };
        let body = Body::Update(Update { references: vec![reference], ..Update::default() });
        self.node.change(case.case_id, &body, &format!("{}:reference:{id}", self.name)).await?;
        tracing::info!(connector = %self.name, ticket = %ticket, case = %id, "case received as a ticket");
        Ok(())
    }

    // -----------------------------------------------------------------------------------------------------------
    // State and reports

    /// Store a link (and its way back), compare-and-set on `version`.
    async fn store_link(&self, link: &Link, version: u64) -> Result<(), SyncError> {
        self.put_link(link, version).await?;
        if let Some(id) = link.case_id {
            self.node.put_state(&format!("case:{id}"), &CaseLink { ticket: link.ticket.clone() }, None).await?;
        }
        Ok(())
    }

    /// Store the link (state `ticket:ID`) if it is still at `version`; its new version.
    async fn put_link(&self, link: &Link, version: u64) -> Result<u64, SyncError> {
        let key = format!("ticket:{}", link.ticket);
        match self.node.put_state(&key, link, Some(version)).await? {
            Some(v) => Ok(v),
            None => Err(NodeError::Unavailable(format!("state {key} changed meanwhile; retrying")).into()),
        }
    }

    /// Report a problem with a linked ticket: once as an internal note on it, and in the health state.
    async fn problem(&self, t: &Ticket, case: Option<CaseId>, link: &mut Link, text: &str) -> Result<(), SyncError> {
        let id = problem_id(text);
        if !link.reported.contains(&id) {
            if let Some(case) = case {
                self.node.report(case, &format!("connector {}: {text}", self.name)).await?;
            }
            link.comments.extend(self.note_problem(t, text).await?);
            link.reported.insert(id);
        }
        self.health(Some(&t.id), case, text).await.map(|_| ())
    }

    /// Report a problem with a ticket that has no link (yet): once as an internal note on it, and in the health
    /// state. The ticket is tried again whenever it changes.
    async fn report_on(&self, t: &Ticket, text: &str) -> Result<(), SyncError> {
        self.note_problem(t, text).await?;
        self.health(Some(&t.id), None, text).await.map(|_| ())
    }

    /// Log a problem and keep it in the health state, once while it repeats; whether it was new.
    async fn health(&self, ticket: Option<&str>, case_id: Option<CaseId>, text: &str) -> Result<bool, SyncError> {
        let mut health = self.node.state::<Health>("health").await?.map(|h| h.value).unwrap_or_default();
        let same = |p: &Problem| p.ticket.as_deref() == ticket && p.case_id == case_id && p.text == text;
        if health.problems.iter().take(5).any(same) {
            return Ok(false);
        }
        tracing::warn!(connector = %self.name, ticket = ?ticket, case = ?case_id, problem = %text, "connector problem");
        health.problems.insert(
            0,
            Problem { at: now().to_string(), ticket: ticket.map(str::to_string), case_id, text: text.into() },
        );
        health.problems.truncate(HEALTH_PROBLEMS);
        self.node.put_state("health", &health, None).await?;
        Ok(true)
    }
}

/// The status an agent means on this side: "not responsible" (rejected) is what the assignee says; the
/// originator withdrawing the same way means cancelled, and the other way round.
fn for_role(s: Status, originator: bool) -> Status {
    match (s, originator) {
        (Status::Rejected, true) => Status::Cancelled,
        (Status::Cancelled, false) => Status::Rejected,
        (s, _) => s,
    }
}

/// The marker id of a problem note: named by its text, so that each problem is noted once.
fn problem_id(text: &str) -> String {
    format!("problem:{}", hex::encode(&derived_uuid(&[text]).as_bytes()[..8]))
}

/// A text without the connector's marker lines.
fn strip_markers(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("[sdx:")).collect::<Vec<_>>().join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_valid_and_distinct() {
        let a = derived_uuid(&["otobo", "case", "7", "2026-11-30T10:00:00Z"]);
        assert_eq!(a, derived_uuid(&["otobo", "case", "7", "2026-11-30T10:00:00Z"]));
        assert_ne!(a, derived_uuid(&["otobo", "case", "8", "2026-11-30T10:00:00Z"]));
        assert_ne!(derived_uuid(&["a", "bc"]), derived_uuid(&["ab", "c"]), "parts are separated");
        assert!(CaseId::parse(&a.to_string()).is_ok());
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn every_priority_has_a_matrix_cell() {
        for p in Priority::VALUES {
            for i in [Impact::High, Impact::Medium, Impact::Low] {
                let (i2, u) = matrix_for(*p, i);
                assert_eq!(Priority::from_matrix(i2, u), *p);
            }
        }
    }

    #[test]
    fn markers_are_stripped_from_texts() {
        assert_eq!(strip_markers("Lösung.\n[sdx:abc]\n"), "Lösung.");
        assert!(has_marker(&format!("x\n{}", marker("1"))));
    }
}
