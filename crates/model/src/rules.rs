//! Rules beyond the schema: lifecycle, ITIL priority, consistency, documented size limits.
//!
//! [`check_message`] returns every [`Issue`] it finds, each with a stable [`ErrorCode`] and a JSON pointer
//! into the JSON form of the message. Checks that need bytes (attachment digests) live in the codec.

use crate::Priority;
use crate::case::{Attachment, Case, Category, JournalEntry, ServiceRef};
use crate::codelist::{CODELIST_VERSION, ErrorCode, MessageType, ReceiptResult, Status};
use crate::message::{Body, Message, SCHEMA_VERSION, Update};
use std::fmt;

/// Documented limits (see `docs/limits.md`). Inputs beyond them are refused with `tooLarge` or `tooDeep`.
pub mod limits {
    /// Largest document accepted by the decoders, in bytes (JSON or XML, including inline attachments).
    pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
    /// Deepest nesting of JSON arrays/objects or XML elements.
    pub const MAX_DEPTH: usize = 32;
    /// Longest subject, in characters.
    pub const MAX_SUBJECT_CHARS: usize = 255;
    /// Longest short text (names, ids, references, reasons of one line), in characters.
    pub const MAX_SHORT_CHARS: usize = 255;
    /// Longest long text (description, journal text, solution, notice text), in characters.
    pub const MAX_TEXT_CHARS: usize = 65_536;
    /// Most journal entries in one case or message.
    pub const MAX_JOURNAL_ENTRIES: usize = 1_000;
    /// Most status history entries in one case.
    pub const MAX_HISTORY_ENTRIES: usize = 1_000;
    /// Most attachments in one case or message.
    pub const MAX_ATTACHMENTS: usize = 100;
    /// Largest inline attachment, decoded, in bytes.
    pub const MAX_INLINE_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
    /// Most entries in any other list (parties, references, relations, services, regions, errors).
    pub const MAX_LIST_ITEMS: usize = 100;
}

/// One finding of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Stable code.
    pub code: ErrorCode,
    /// JSON pointer (RFC 6901) into the JSON form of the message.
    pub pointer: String,
    /// What is wrong, in English, without personal data.
    pub message: String,
}

struct Checker {
    issues: Vec<Issue>,
}

impl Checker {
    fn push(&mut self, code: ErrorCode, pointer: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue { code, pointer: pointer.into(), message: message.into() });
    }

    fn text(&mut self, p: fmt::Arguments<'_>, s: &str, max: usize, required: bool) {
        if required && s.trim().is_empty() {
            self.push(ErrorCode::SchemaViolation, p.to_string(), "must not be empty");
        }
        // One pass: count characters and find the first one not allowed. Printable ASCII is the common case.
        let (mut n, mut bad) = (0usize, None);
        for c in s.chars() {
            n += 1;
            if bad.is_none() && !(matches!(c, ' '..='~') || allowed_char(c)) {
                bad = Some(c);
            }
        }
        if n > max {
            self.push(ErrorCode::TooLarge, p.to_string(), format!("{n} characters, at most {max} allowed"));
        }
        if let Some(c) = bad {
            self.push(
                ErrorCode::SchemaViolation,
                p.to_string(),
                format!("character U+{:04X} is not allowed (control or non-character)", c as u32),
            );
        }
    }

    fn short(&mut self, p: fmt::Arguments<'_>, s: &str) {
        self.text(p, s, limits::MAX_SHORT_CHARS, true);
        if s.contains(['\n', '\r']) {
            self.push(ErrorCode::SchemaViolation, p.to_string(), "must be a single line");
        }
    }

    fn opt_short(&mut self, p: fmt::Arguments<'_>, s: &Option<String>) {
        if let Some(s) = s {
            self.short(p, s);
        }
    }

    fn count(&mut self, p: fmt::Arguments<'_>, n: usize, max: usize) {
        if n > max {
            self.push(ErrorCode::TooLarge, p.to_string(), format!("{n} entries, at most {max} allowed"));
        }
    }
}

/// Characters allowed in SDX text: everything XML 1.0 can carry except C0/C1 controls (tab, LF and CR are
/// allowed) and non-characters.
pub fn allowed_char(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => false,
        '\u{fdd0}'..='\u{fdef}' => false,
        c => (c as u32) & 0xfffe != 0xfffe,
    }
}

/// Check a message against every rule. An empty result means the message is valid.
pub fn check_message(m: &Message) -> Vec<Issue> {
    let mut c = Checker { issues: Vec::new() };
    let h = &m.header;
    if h.message_type != m.body.message_type() {
        c.push(
            ErrorCode::MessageTypeMismatch,
            "/header/messageType",
            format!("header says `{}` but the body is `{}`", h.message_type, m.body.message_type()),
        );
    }
    if h.schema_version != SCHEMA_VERSION {
        c.push(
            ErrorCode::UnsupportedVersion,
            "/header/schemaVersion",
            format!(
                "schema version `{}` is not supported (this build speaks {SCHEMA_VERSION})",
                clip(&h.schema_version)
            ),
        );
    }
    if h.codelist_version != CODELIST_VERSION {
        c.push(
            ErrorCode::UnsupportedVersion,
            "/header/codelistVersion",
            format!(
                "codelist version `{}` is not supported (this build speaks {CODELIST_VERSION})",
                clip(&h.codelist_version)
            ),
        );
    }
    c.opt_short(format_args!("/header/author/name"), &h.author.name);
    c.opt_short(format_args!("/header/reader/name"), &h.reader.name);
    c.opt_short(format_args!("/header/product"), &h.product);
    c.opt_short(format_args!("/header/productVendor"), &h.product_vendor);
    c.opt_short(format_args!("/header/productVersion"), &h.product_version);
    if h.author.key == h.reader.key {
        c.push(ErrorCode::WrongRecipient, "/header/reader/key", "author and reader are the same organisation");
    }
    let case_message = !matches!(m.body, Body::Receipt(_) | Body::ServiceNotice(_));
    if case_message {
        if h.case_id.is_none() {
            c.push(ErrorCode::SchemaViolation, "/header/caseId", "required for this message type");
        }
        match h.sequence {
            None => c.push(ErrorCode::SchemaViolation, "/header/sequence", "required for this message type"),
            Some(0) => c.push(ErrorCode::OutOfOrder, "/header/sequence", "sequence numbers start at 1"),
            Some(_) => {}
        }
    }
    if h.acknowledged_sequence.is_some() && (!case_message || matches!(m.body, Body::Forward(_))) {
        c.push(
            ErrorCode::SchemaViolation,
            "/header/acknowledgedSequence",
            "only on case messages after the forward that creates the case",
        );
    }
    let b = "/body";
    match &m.body {
        Body::Forward(f) => {
            let p = format!("{b}/forward");
            if let Some(id) = h.case_id
                && id != f.case.case_id
            {
                c.push(ErrorCode::InconsistentCase, format!("{p}/case/caseId"), "differs from /header/caseId");
            }
            if f.case.assignee != h.reader.key {
                c.push(
                    ErrorCode::InconsistentCase,
                    format!("{p}/case/assignee"),
                    "a forwarded case is assigned to the reader",
                );
            }
            check_case(&mut c, &format!("{p}/case"), &f.case);
            if let Some(n) = &f.note {
                c.text(format_args!("{p}/note"), n, limits::MAX_TEXT_CHARS, true);
            }
        }
        Body::Update(u) => check_update(&mut c, &format!("{b}/update"), u),
        Body::Resolve(r) => {
            let p = format!("{b}/resolve");
            c.text(format_args!("{p}/solution/text"), &r.solution.text, limits::MAX_TEXT_CHARS, true);
            check_journal(&mut c, &format!("{p}/journal"), &r.journal);
        }
        Body::HandBack(hb) => {
            let p = format!("{b}/handBack");
            if let Some(s) = &hb.solution {
                c.text(format_args!("{p}/solution/text"), &s.text, limits::MAX_TEXT_CHARS, true);
            }
            if let Some(n) = &hb.note {
                c.text(format_args!("{p}/note"), n, limits::MAX_TEXT_CHARS, true);
            }
        }
        Body::Close(cl) => {
            if let Some(n) = &cl.note {
                c.text(format_args!("{b}/close/note"), n, limits::MAX_TEXT_CHARS, true);
            }
        }
        Body::Reopen(r) => c.text(format_args!("{b}/reopen/reason"), &r.reason, limits::MAX_TEXT_CHARS, true),
        Body::Reject(r) => {
            if let Some(t) = &r.text {
                c.text(format_args!("{b}/reject/text"), t, limits::MAX_TEXT_CHARS, true);
            }
        }
        Body::Receipt(r) => {
            let p = format!("{b}/receipt");
            match r.result {
                ReceiptResult::Accepted if !r.errors.is_empty() => {
                    c.push(ErrorCode::SchemaViolation, format!("{p}/errors"), "an accepted receipt carries no errors")
                }
                ReceiptResult::Rejected if r.errors.is_empty() => c.push(
                    ErrorCode::SchemaViolation,
                    format!("{p}/errors"),
                    "a rejecting receipt needs at least one error",
                ),
                _ => {}
            }
            if let Some(irt) = h.in_reply_to
                && irt != r.received_message_id
            {
                c.push(
                    ErrorCode::InconsistentCase,
                    "/header/inReplyTo",
                    "differs from /body/receipt/receivedMessageId",
                );
            }
            c.count(format_args!("{p}/errors"), r.errors.len(), limits::MAX_LIST_ITEMS);
            for (i, e) in r.errors.iter().enumerate() {
                c.text(format_args!("{p}/errors/{i}/text"), &e.text, limits::MAX_TEXT_CHARS, true);
                if let Some(l) = &e.location {
                    c.short(format_args!("{p}/errors/{i}/location"), l);
                }
            }
        }
        Body::ServiceNotice(n) => {
            let p = format!("{b}/serviceNotice");
            if n.services.is_empty() {
                c.push(ErrorCode::SchemaViolation, format!("{p}/services"), "at least one affected service");
            }
            c.count(format_args!("{p}/services"), n.services.len(), limits::MAX_LIST_ITEMS);
            for (i, s) in n.services.iter().enumerate() {
                check_service(&mut c, &format!("{p}/services/{i}"), s);
            }
            c.count(format_args!("{p}/regions"), n.regions.len(), limits::MAX_LIST_ITEMS);
            c.count(format_args!("{p}/relatedCases"), n.related_cases.len(), limits::MAX_LIST_ITEMS);
            if let Some(end) = n.ends_at
                && end < n.starts_at
            {
                c.push(ErrorCode::InvalidTimestamp, format!("{p}/endsAt"), "ends before it starts");
            }
            c.short(format_args!("{p}/title"), &n.title);
            c.text(format_args!("{p}/text"), &n.text, limits::MAX_TEXT_CHARS, true);
        }
    }
    c.issues
}

fn clip(s: &str) -> String {
    s.chars().take(20).collect()
}

fn check_service(c: &mut Checker, p: &str, s: &ServiceRef) {
    if s.leika_key.is_none() && s.ozg_id.is_none() && s.name.is_none() {
        c.push(ErrorCode::SchemaViolation, p, "a service needs a leikaKey, an ozgId or a name");
    }
    c.opt_short(format_args!("{p}/name"), &s.name);
}

fn check_category(c: &mut Checker, p: &str, cat: &Category) {
    if let Some(s) = &cat.service {
        check_service(c, &format!("{p}/service"), s);
    }
}

/// Check a case on its own (used for forwards and for stored cases).
pub fn check_case_issues(case: &Case) -> Vec<Issue> {
    let mut c = Checker { issues: Vec::new() };
    check_case(&mut c, "", case);
    c.issues
}

fn check_case(c: &mut Checker, p: &str, k: &Case) {
    // Status and its history.
    c.count(format_args!("{p}/statusHistory"), k.status_history.len(), limits::MAX_HISTORY_ENTRIES);
    match k.status_history.last() {
        None => c.push(ErrorCode::InconsistentCase, format!("{p}/statusHistory"), "needs at least the first status"),
        Some(last) => {
            if last.status != k.status {
                c.push(
                    ErrorCode::InconsistentCase,
                    format!("{p}/status"),
                    format!("`{}` differs from the last status in the history (`{}`)", k.status, last.status),
                );
            }
            if last.pending_reason != k.pending_reason {
                c.push(
                    ErrorCode::InconsistentCase,
                    format!("{p}/pendingReason"),
                    "differs from the last status history entry",
                );
            }
        }
    }
    for (i, w) in k.status_history.windows(2).enumerate() {
        let (a, b) = (&w[0], &w[1]);
        let q = format!("{p}/statusHistory/{}", i + 1);
        if !a.status.can_transition_to(b.status) {
            c.push(
                ErrorCode::InvalidTransition,
                format!("{q}/status"),
                format!("`{}` → `{}` is not an allowed status change", a.status, b.status),
            );
        }
        if b.changed_at < a.changed_at {
            c.push(ErrorCode::InvalidTimestamp, format!("{q}/changedAt"), "earlier than the previous status change");
        }
    }
    for (i, s) in k.status_history.iter().enumerate() {
        let q = format!("{p}/statusHistory/{i}");
        pending_pair(c, &q, s.status, s.pending_reason.is_some());
        if let Some(r) = &s.reason {
            c.text(format_args!("{q}/reason"), r, limits::MAX_TEXT_CHARS, true);
        }
    }
    pending_pair(c, p, k.status, k.pending_reason.is_some());
    // Priority.
    let expected = Priority::from_matrix(k.impact, k.urgency);
    if k.priority != expected {
        c.push(
            ErrorCode::PriorityMismatch,
            format!("{p}/priority"),
            format!("impact `{}` × urgency `{}` gives `{expected}`, not `{}`", k.impact, k.urgency, k.priority),
        );
    }
    // Solution.
    let was_resolved = k.status_history.iter().any(|s| s.status == Status::Resolved);
    let needs_solution = k.status == Status::Resolved || (k.status == Status::Closed && was_resolved);
    if needs_solution && k.solution.is_none() {
        c.push(ErrorCode::SolutionMissing, format!("{p}/solution"), format!("a `{}` case needs a solution", k.status));
    }
    if let Some(s) = &k.solution {
        c.text(format_args!("{p}/solution/text"), &s.text, limits::MAX_TEXT_CHARS, true);
    }
    // Parties.
    c.count(format_args!("{p}/parties"), k.parties.len(), limits::MAX_LIST_ITEMS);
    for (field, key) in [("originator", &k.originator), ("assignee", &k.assignee)] {
        if !k.parties.iter().any(|x| &x.organisation == key) {
            c.push(ErrorCode::InconsistentCase, format!("{p}/{field}"), format!("`{key}` is not among the parties"));
        }
    }
    for (i, party) in k.parties.iter().enumerate() {
        let q = format!("{p}/parties/{i}");
        c.short(format_args!("{q}/name"), &party.name);
        if let Some(ct) = &party.contact {
            c.opt_short(format_args!("{q}/contact/name"), &ct.name);
            c.opt_short(format_args!("{q}/contact/email"), &ct.email);
            c.opt_short(format_args!("{q}/contact/phone"), &ct.phone);
        }
        if k.parties[..i].iter().any(|o| o.organisation == party.organisation) {
            c.push(ErrorCode::DuplicateId, format!("{q}/organisation"), "organisation listed twice");
        }
    }
    if let Some(r) = &k.requester {
        let q = format!("{p}/requester");
        c.opt_short(format_args!("{q}/name"), &r.name);
        c.opt_short(format_args!("{q}/email"), &r.email);
        c.opt_short(format_args!("{q}/phone"), &r.phone);
        c.opt_short(format_args!("{q}/language"), &r.language);
    }
    // References and relations.
    c.count(format_args!("{p}/references"), k.references.len(), limits::MAX_LIST_ITEMS);
    for (i, r) in k.references.iter().enumerate() {
        c.short(format_args!("{p}/references/{i}/id"), &r.id);
        c.opt_short(format_args!("{p}/references/{i}/system"), &r.system);
    }
    c.count(format_args!("{p}/relatedCases"), k.related_cases.len(), limits::MAX_LIST_ITEMS);
    for (i, r) in k.related_cases.iter().enumerate() {
        if r.case_id == k.case_id {
            c.push(
                ErrorCode::InconsistentCase,
                format!("{p}/relatedCases/{i}/caseId"),
                "a case cannot relate to itself",
            );
        }
    }
    // Texts and times.
    c.text(format_args!("{p}/subject"), &k.subject, limits::MAX_SUBJECT_CHARS, true);
    c.text(format_args!("{p}/description"), &k.description, limits::MAX_TEXT_CHARS, true);
    if k.updated_at < k.created_at {
        c.push(ErrorCode::InvalidTimestamp, format!("{p}/updatedAt"), "earlier than createdAt");
    }
    if let Some(first) = k.status_history.first()
        && first.changed_at < k.created_at
    {
        c.push(ErrorCode::InvalidTimestamp, format!("{p}/statusHistory/0/changedAt"), "earlier than createdAt");
    }
    check_category(c, &format!("{p}/category"), &k.category);
    if let Some(sl) = &k.service_level {
        c.opt_short(format_args!("{p}/serviceLevel/agreement"), &sl.agreement);
    }
    check_journal(c, &format!("{p}/journal"), &k.journal);
    check_attachments(c, &format!("{p}/attachments"), &k.attachments);
}

fn pending_pair(c: &mut Checker, p: &str, status: Status, has_reason: bool) {
    if status == Status::Pending && !has_reason {
        c.push(
            ErrorCode::PendingReasonMissing,
            format!("{p}/pendingReason"),
            "status `pending` needs a pending reason",
        );
    }
    if status != Status::Pending && has_reason {
        c.push(
            ErrorCode::PendingReasonMissing,
            format!("{p}/pendingReason"),
            format!("status `{status}` takes no pending reason"),
        );
    }
}

fn check_journal(c: &mut Checker, p: &str, journal: &[JournalEntry]) {
    c.count(format_args!("{p}"), journal.len(), limits::MAX_JOURNAL_ENTRIES);
    let mut ids = std::collections::HashSet::with_capacity(journal.len());
    for (i, e) in journal.iter().enumerate() {
        if !ids.insert(e.id) {
            c.push(ErrorCode::DuplicateId, format!("{p}/{i}/id"), "journal entry id used twice");
        }
        c.text(format_args!("{p}/{i}/text"), &e.text, limits::MAX_TEXT_CHARS, true);
        c.opt_short(format_args!("{p}/{i}/author/name"), &e.author.name);
    }
}

fn check_attachments(c: &mut Checker, p: &str, atts: &[Attachment]) {
    c.count(format_args!("{p}"), atts.len(), limits::MAX_ATTACHMENTS);
    let mut ids = std::collections::HashSet::with_capacity(atts.len());
    for (i, a) in atts.iter().enumerate() {
        let q = format!("{p}/{i}");
        if !ids.insert(a.id) {
            c.push(ErrorCode::DuplicateId, format!("{q}/id"), "attachment id used twice");
        }
        c.short(format_args!("{q}/fileName"), &a.file_name);
        if a.file_name.contains(['/', '\\']) {
            c.push(ErrorCode::SchemaViolation, format!("{q}/fileName"), "a file name has no path separators");
        }
        match (&a.content, &a.uri) {
            (None, None) => c.push(ErrorCode::AttachmentMismatch, &q, "needs inline content or a uri"),
            (Some(_), Some(_)) => c.push(ErrorCode::AttachmentMismatch, &q, "content and uri are exclusive"),
            (Some(_), None) if a.size > limits::MAX_INLINE_ATTACHMENT_BYTES => c.push(
                ErrorCode::TooLarge,
                format!("{q}/size"),
                format!("inline attachments hold at most {} bytes", limits::MAX_INLINE_ATTACHMENT_BYTES),
            ),
            (None, Some(u)) => {
                c.short(format_args!("{q}/uri"), u);
                if !u.starts_with("https://") {
                    c.push(ErrorCode::SchemaViolation, format!("{q}/uri"), "must be an https:// URI");
                }
            }
            _ => {}
        }
    }
}

fn check_update(c: &mut Checker, p: &str, u: &Update) {
    match (u.status, u.pending_reason) {
        (Some(Status::Pending), None) => c.push(
            ErrorCode::PendingReasonMissing,
            format!("{p}/pendingReason"),
            "status `pending` needs a pending reason",
        ),
        (s, Some(_)) if s != Some(Status::Pending) => c.push(
            ErrorCode::PendingReasonMissing,
            format!("{p}/pendingReason"),
            "a pending reason goes only with status `pending`",
        ),
        _ => {}
    }
    if u.status_reason.is_some() && u.status.is_none() {
        c.push(ErrorCode::SchemaViolation, format!("{p}/statusReason"), "goes only with a status");
    }
    if let Some(r) = &u.status_reason {
        c.text(format_args!("{p}/statusReason"), r, limits::MAX_TEXT_CHARS, true);
    }
    if matches!(u.status, Some(Status::Resolved | Status::Closed | Status::Reopened | Status::Rejected)) {
        c.push(
            ErrorCode::InvalidTransition,
            format!("{p}/status"),
            "resolved, closed, reopened and rejected are set by their own message types",
        );
    }
    match (u.impact, u.urgency, u.priority) {
        (Some(i), Some(g), Some(pr)) if pr != Priority::from_matrix(i, g) => c.push(
            ErrorCode::PriorityMismatch,
            format!("{p}/priority"),
            format!("impact `{i}` × urgency `{g}` gives `{}`", Priority::from_matrix(i, g)),
        ),
        (Some(_), _, None) | (_, Some(_), None) => c.push(
            ErrorCode::PriorityMismatch,
            format!("{p}/priority"),
            "a change of impact or urgency carries the resulting priority",
        ),
        _ => {}
    }
    if let Some(s) = &u.subject {
        c.text(format_args!("{p}/subject"), s, limits::MAX_SUBJECT_CHARS, true);
    }
    if let Some(d) = &u.description {
        c.text(format_args!("{p}/description"), d, limits::MAX_TEXT_CHARS, true);
    }
    if let Some(cat) = &u.category {
        check_category(c, &format!("{p}/category"), cat);
    }
    c.count(format_args!("{p}/parties"), u.parties.len(), limits::MAX_LIST_ITEMS);
    for (i, party) in u.parties.iter().enumerate() {
        c.short(format_args!("{p}/parties/{i}/name"), &party.name);
    }
    c.count(format_args!("{p}/references"), u.references.len(), limits::MAX_LIST_ITEMS);
    for (i, r) in u.references.iter().enumerate() {
        c.short(format_args!("{p}/references/{i}/id"), &r.id);
        c.opt_short(format_args!("{p}/references/{i}/system"), &r.system);
    }
    c.count(format_args!("{p}/relatedCases"), u.related_cases.len(), limits::MAX_LIST_ITEMS);
    check_journal(c, &format!("{p}/journal"), &u.journal);
    check_attachments(c, &format!("{p}/attachments"), &u.attachments);
    let empty = Update { revision: u.revision, ..Update::default() };
    if *u == empty {
        c.push(ErrorCode::SchemaViolation, p, "an update changes at least one thing");
    }
}

/// The message types that a given status change may travel in (used by nodes to enforce the lifecycle).
pub fn message_type_for_status(status: Status) -> MessageType {
    match status {
        Status::Resolved => MessageType::Resolve,
        Status::Closed => MessageType::Close,
        Status::Reopened => MessageType::Reopen,
        Status::Rejected => MessageType::Reject,
        _ => MessageType::Update,
    }
}
