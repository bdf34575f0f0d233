//! The case lifecycle across organisations: who may do what, and what a message does to a case.
//!
//! Both nodes run the same function over the same messages: the sender applies its own change before it
//! sends it, the receiver applies it when it arrives, so both copies of the case end identical. The rules:
//!
//! | message | only from | effect |
//! |---|---|---|
//! | `forward` | anyone to the new assignee | creates the case at the receiver |
//! | `update` | originator or assignee | status: the assignee any lifecycle change except the four below; the originator only `pending` → `inProgress` (answering) and `cancelled`. Classification, assignment and targets: assignee. Subject and description: originator. References, relations, journal, attachments: both |
//! | `resolve` | assignee | → `resolved` with the solution |
//! | `handBack` | assignee | assignee := originator (and → `resolved` with the solution, if one is given) |
//! | `close` | originator | → `closed` |
//! | `reopen` | originator | → `reopened`; assignee := the reader (the organisation asked to work on it again) |
//! | `reject` | assignee | → `rejected`; assignee := originator |
//!
//! Every authorship claim in a message names its (authenticated) author, or the message is refused with
//! `senderMismatch`: a forward's originator and every status change, journal entry, attachment and solution of the
//! forwarded case; the journal entries, attachments and solution a later message adds. Journal entries and
//! attachments have new ids; nothing is ever edited or removed. `revision` counts the changes applied to this copy.
//!
//! When both organisations change a case at the same time, [`crate::convergence`] decides the one order in which
//! both nodes apply the changes.

use crate::case::{Case, JournalEntry, StatusChange};
use crate::codelist::{ErrorCode, PendingReason, Status};
use crate::id::{OrgKey, Timestamp};
use crate::message::{Body, Forward};

/// Why a change is refused: a stable code and an explanation (no personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{code}] {message}")]
pub struct Refusal {
    /// Stable code from the `errorCode` list.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
}

fn refuse<T>(code: ErrorCode, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { code, message: message.into() })
}

/// The role of an organisation in a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created the case; it returns there.
    Originator,
    /// Works on it now.
    Assignee,
    /// Both (the case was handed back, or a node assigned it to itself).
    Both,
    /// Neither.
    Other,
}

/// The role of `org` in `case`.
pub fn role_of(case: &Case, org: &OrgKey) -> Role {
    match (&case.originator == org, &case.assignee == org) {
        (true, true) => Role::Both,
        (true, false) => Role::Originator,
        (false, true) => Role::Assignee,
        (false, false) => Role::Other,
    }
}

fn not_in_name_of(what: &str, named: &OrgKey, author: &OrgKey) -> Result<(), Refusal> {
    if named == author {
        Ok(())
    } else {
        refuse(ErrorCode::SenderMismatch, format!("{what} names {named}, not the sender {author}"))
    }
}

/// The case a receiver creates from a forward. The forward must assign the case to `reader`, come from a party of
/// the case that is its originator, and every status change, journal entry, attachment and solution in it must be
/// the sender's own.
pub fn case_from_forward(f: &Forward, author: &OrgKey, reader: &OrgKey) -> Result<Case, Refusal> {
    if &f.case.assignee != reader {
        return refuse(ErrorCode::WrongRecipient, "the forwarded case is not assigned to the reader");
    }
    if !f.case.parties.iter().any(|p| &p.organisation == author) {
        return refuse(ErrorCode::NotPermitted, "the sender is not a party of the case it forwards");
    }
    not_in_name_of("the originator", &f.case.originator, author)?;
    for (i, s) in f.case.status_history.iter().enumerate() {
        not_in_name_of(&format!("status change {i}"), &s.changed_by, author)?;
    }
    for e in &f.case.journal {
        not_in_name_of(&format!("journal entry {}", e.id), &e.author.organisation, author)?;
    }
    for a in &f.case.attachments {
        not_in_name_of(&format!("attachment {}", a.id), &a.added_by, author)?;
    }
    if let Some(s) = &f.case.solution {
        not_in_name_of("the solution", &s.resolved_by, author)?;
    }
    if f.case.status.is_terminal() {
        return refuse(ErrorCode::InvalidTransition, format!("a `{}` case cannot be forwarded", f.case.status));
    }
    Ok(f.case.clone())
}

fn is_originator(r: Role) -> bool {
    matches!(r, Role::Originator | Role::Both)
}
fn is_assignee(r: Role) -> bool {
    matches!(r, Role::Assignee | Role::Both)
}

fn transition(
    case: &mut Case,
    to: Status,
    pending: Option<PendingReason>,
    by: &OrgKey,
    at: Timestamp,
    reason: Option<String>,
) -> Result<(), Refusal> {
    if !case.status.can_transition_to(to) {
        return refuse(
            ErrorCode::InvalidTransition,
            format!("`{}` → `{to}` is not an allowed status change", case.status),
        );
    }
    if (to == Status::Pending) != pending.is_some() {
        return refuse(ErrorCode::PendingReasonMissing, "a pending reason goes with status `pending` and only with it");
    }
    case.status = to;
    case.pending_reason = pending;
    case.status_history.push(StatusChange {
        status: to,
        pending_reason: pending,
        changed_at: at,
        changed_by: by.clone(),
        reason,
    });
    Ok(())
}

fn append_journal(case: &mut Case, entries: &[JournalEntry], author: &OrgKey) -> Result<(), Refusal> {
    for e in entries {
        not_in_name_of(&format!("journal entry {}", e.id), &e.author.organisation, author)?;
        if case.journal.iter().any(|x| x.id == e.id) {
            return refuse(ErrorCode::DuplicateId, format!("journal entry {} exists already", e.id));
        }
        case.journal.push(e.clone());
    }
    Ok(())
}

/// Apply a case message from `author` (already authenticated), addressed to `reader`, created at `at`, to a
/// copy of the case. Returns the new case; the input is left unchanged when the change is refused.
pub fn apply(case: &Case, author: &OrgKey, reader: &OrgKey, body: &Body, at: Timestamp) -> Result<Case, Refusal> {
    let role = role_of(case, author);
    if role == Role::Other {
        return refuse(ErrorCode::NotPermitted, "the sender is neither originator nor assignee of the case");
    }
    if case.status.is_terminal() {
        return refuse(ErrorCode::InvalidTransition, format!("the case is `{}`; no further change", case.status));
    }
    let mut c = case.clone();
    match body {
        Body::Forward(_) => {
            return refuse(ErrorCode::InconsistentCase, "the case exists already; a forward creates a case");
        }
        Body::Receipt(_) | Body::ServiceNotice(_) => {
            return refuse(ErrorCode::SchemaViolation, "receipts and service notices do not change a case");
        }
        Body::Update(u) => {
            let classifies = u.impact.is_some()
                || u.urgency.is_some()
                || u.priority.is_some()
                || u.category.is_some()
                || u.region.is_some()
                || u.support_level.is_some()
                || u.service_level.is_some()
                || u.assignee.is_some()
                || !u.parties.is_empty();
            if classifies && !is_assignee(role) {
                return refuse(ErrorCode::NotPermitted, "only the assignee classifies, assigns or sets targets");
            }
            if (u.subject.is_some() || u.description.is_some()) && !is_originator(role) {
                return refuse(ErrorCode::NotPermitted, "only the originator changes subject and description");
            }
            if let Some(to) = u.status {
                let originator_may =
                    to == Status::Cancelled || (to == Status::InProgress && case.status == Status::Pending);
                if !is_assignee(role) && !originator_may {
                    return refuse(ErrorCode::NotPermitted, format!("only the assignee sets `{to}`"));
                }
                if matches!(to, Status::Resolved | Status::Closed | Status::Reopened | Status::Rejected) {
                    return refuse(ErrorCode::InvalidTransition, format!("`{to}` has its own message type"));
                }
                transition(&mut c, to, u.pending_reason, author, at, u.status_reason.clone())?;
            }
            if let Some(i) = u.impact {
                c.impact = i;
            }
            if let Some(g) = u.urgency {
                c.urgency = g;
            }
            if let Some(p) = u.priority {
                c.priority = p;
            }
            if c.priority != crate::Priority::from_matrix(c.impact, c.urgency) {
                return refuse(ErrorCode::PriorityMismatch, "the resulting priority does not follow impact × urgency");
            }
            if let Some(s) = &u.subject {
                c.subject = s.clone();
            }
            if let Some(d) = &u.description {
                c.description = d.clone();
            }
            if let Some(cat) = &u.category {
                c.category = cat.clone();
            }
            if let Some(r) = &u.region {
                c.region = Some(r.clone());
            }
            if let Some(l) = u.support_level {
                c.support_level = l;
            }
            if let Some(sl) = &u.service_level {
                c.service_level = Some(sl.clone());
            }
            for p in &u.parties {
                if c.parties.iter().any(|x| x.organisation == p.organisation) {
                    return refuse(ErrorCode::DuplicateId, format!("{} is a party already", p.organisation));
                }
                c.parties.push(p.clone());
            }
            if let Some(a) = &u.assignee {
                if !c.parties.iter().any(|p| &p.organisation == a) {
                    return refuse(ErrorCode::InconsistentCase, format!("the new assignee {a} is not a party"));
                }
                c.assignee = a.clone();
            }
            for r in &u.references {
                if c.references.iter().any(|x| x.owner == r.owner && x.id == r.id) {
                    continue; // the same reference twice is harmless
                }
                c.references.push(r.clone());
            }
            for r in &u.related_cases {
                if !c.related_cases.contains(r) {
                    c.related_cases.push(r.clone());
                }
            }
            append_journal(&mut c, &u.journal, author)?;
            for a in &u.attachments {
                not_in_name_of(&format!("attachment {}", a.id), &a.added_by, author)?;
                if c.attachments.iter().any(|x| x.id == a.id) {
                    return refuse(ErrorCode::DuplicateId, format!("attachment {} exists already", a.id));
                }
                c.attachments.push(a.clone());
            }
        }
        Body::Resolve(r) => {
            if !is_assignee(role) {
                return refuse(ErrorCode::NotPermitted, "only the assignee resolves");
            }
            not_in_name_of("the solution", &r.solution.resolved_by, author)?;
            transition(&mut c, Status::Resolved, None, author, at, None)?;
            c.solution = Some(r.solution.clone());
            append_journal(&mut c, &r.journal, author)?;
        }
        Body::HandBack(h) => {
            if !is_assignee(role) {
                return refuse(ErrorCode::NotPermitted, "only the assignee hands back");
            }
            if let Some(s) = &h.solution {
                not_in_name_of("the solution", &s.resolved_by, author)?;
                if c.status != Status::Resolved {
                    transition(&mut c, Status::Resolved, None, author, at, h.note.clone())?;
                }
                c.solution = Some(s.clone());
            }
            c.assignee = c.originator.clone();
        }
        Body::Close(cl) => {
            if !is_originator(role) {
                return refuse(ErrorCode::NotPermitted, "only the originator closes");
            }
            transition(&mut c, Status::Closed, None, author, at, cl.note.clone())?;
        }
        Body::Reopen(r) => {
            if !is_originator(role) {
                return refuse(ErrorCode::NotPermitted, "only the originator reopens");
            }
            transition(&mut c, Status::Reopened, None, author, at, Some(r.reason.clone()))?;
            c.solution = None;
            if !c.parties.iter().any(|p| &p.organisation == reader) {
                return refuse(ErrorCode::InconsistentCase, "the reader is not a party of the case");
            }
            c.assignee = reader.clone();
        }
        Body::Reject(r) => {
            if !is_assignee(role) {
                return refuse(ErrorCode::NotPermitted, "only the assignee rejects");
            }
            transition(&mut c, Status::Rejected, None, author, at, r.text.clone())?;
            c.assignee = c.originator.clone();
        }
    }
    c.revision = case.revision.saturating_add(1);
    if at > c.updated_at {
        c.updated_at = at;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{self, BELA, MILA};
    use crate::*;

    fn org(s: &str) -> OrgKey {
        OrgKey::parse(s).unwrap()
    }
    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }
    fn upd(status: Status, pending: Option<PendingReason>) -> Body {
        Body::Update(Update { revision: 2, status: Some(status), pending_reason: pending, ..Update::default() })
    }
    fn solution(by: &str) -> Solution {
        Solution {
            code: ResolutionCode::Fixed,
            text: "Upload-Grenze auf 20 MB erhöht.".into(),
            resolved_at: at("2026-11-28T10:00:00+01:00"),
            resolved_by: org(by),
        }
    }

    #[test]
    fn use_cases_2_1_and_2_2_run_through() {
        let (mila, bela) = (org(MILA), org(BELA));
        let Body::Forward(f) = sample::typical_forward().body else { unreachable!() };
        let c = case_from_forward(&f, &mila, &bela).unwrap();
        let c = apply(&c, &bela, &mila, &upd(Status::InProgress, None), at("2026-11-27T10:00:00+01:00")).unwrap();
        let c = apply(
            &c,
            &bela,
            &mila,
            &upd(Status::Pending, Some(PendingReason::WaitingForRequester)),
            at("2026-11-27T11:00:00+01:00"),
        )
        .unwrap();
        // The originator answers and moves the case back to work.
        let c = apply(&c, &mila, &bela, &upd(Status::InProgress, None), at("2026-11-27T12:00:00+01:00")).unwrap();
        let resolve = Body::Resolve(Resolve { revision: 5, solution: solution(BELA), journal: vec![] });
        let c = apply(&c, &bela, &mila, &resolve, at("2026-11-28T10:00:00+01:00")).unwrap();
        let hb = Body::HandBack(HandBack { revision: 6, solution: Some(solution(BELA)), note: None });
        let c = apply(&c, &bela, &mila, &hb, at("2026-11-28T10:01:00+01:00")).unwrap();
        assert_eq!(c.assignee, mila);
        let close = Body::Close(Close { revision: 7, closure_code: None, note: None });
        let c = apply(&c, &mila, &bela, &close, at("2026-11-28T12:00:00+01:00")).unwrap();
        assert_eq!(c.status, Status::Closed);
        assert_eq!(c.revision, 7);
        let statuses: Vec<_> = c.status_history.iter().map(|s| s.status).collect();
        assert_eq!(
            statuses,
            [Status::New, Status::InProgress, Status::Pending, Status::InProgress, Status::Resolved, Status::Closed]
        );
        assert!(rules::check_case_issues(&c).is_empty(), "{:?}", rules::check_case_issues(&c));
        // Nothing more after closing.
        assert_eq!(
            apply(&c, &mila, &bela, &upd(Status::InProgress, None), at("2026-11-29T00:00:00Z")).unwrap_err().code,
            ErrorCode::InvalidTransition
        );
    }

    #[test]
    fn who_may_do_what_is_enforced() {
        let (mila, bela) = (org(MILA), org(BELA));
        let c = sample::typical_case();
        let t = at("2026-11-27T10:00:00+01:00");
        let err = |r: Result<Case, Refusal>| r.unwrap_err().code;
        // The originator may not resolve, may not set inProgress from new.
        let resolve = Body::Resolve(Resolve { revision: 2, solution: solution(MILA), journal: vec![] });
        assert_eq!(err(apply(&c, &mila, &bela, &resolve, t)), ErrorCode::NotPermitted);
        assert_eq!(err(apply(&c, &mila, &bela, &upd(Status::InProgress, None), t)), ErrorCode::NotPermitted);
        // The assignee may not close; a stranger may do nothing.
        let close = Body::Close(Close { revision: 2, closure_code: None, note: None });
        assert_eq!(err(apply(&c, &bela, &mila, &close, t)), ErrorCode::NotPermitted);
        assert_eq!(err(apply(&c, &org("psw:99999999"), &bela, &close, t)), ErrorCode::NotPermitted);
        // Journal entries cannot be forged in the partner's name.
        let mut c2 = c.clone();
        c2.journal.clear();
        let forged = Body::Update(Update { revision: 2, journal: sample::typical_case().journal, ..Update::default() });
        assert_eq!(err(apply(&c2, &bela, &mila, &forged, t)), ErrorCode::SenderMismatch);
        // Re-adding an existing entry is refused; the input case is unchanged.
        let again = Body::Update(Update { revision: 2, journal: vec![c.journal[0].clone()], ..Update::default() });
        assert_eq!(err(apply(&c, &mila, &bela, &again, t)), ErrorCode::DuplicateId);
        assert_eq!(c, sample::typical_case());
        // The assignee rejects: the case returns to the originator.
        let reject = Body::Reject(Reject {
            revision: 2,
            reason: RejectionReason::NotResponsible,
            text: None,
            suggested_assignee: None,
        });
        let r = apply(&c, &bela, &mila, &reject, t).unwrap();
        assert_eq!((r.status, r.assignee.clone()), (Status::Rejected, mila.clone()));
    }

    /// A forward is refused when anything in it claims to be another organisation's.
    #[test]
    fn a_forward_speaks_only_for_its_sender() {
        let (mila, bela) = (org(MILA), org(BELA));
        let other = org("psw:09162000");
        let Body::Forward(f) = sample::typical_forward().body else { unreachable!() };
        assert!(case_from_forward(&f, &mila, &bela).is_ok());
        type Forge<'a> = Box<dyn Fn(&mut Forward) + 'a>;
        let forged: Vec<(&str, Forge)> = vec![
            ("originator", Box::new(|f: &mut Forward| f.case.originator = other.clone())),
            ("status change", Box::new(|f: &mut Forward| f.case.status_history[0].changed_by = other.clone())),
            ("journal", Box::new(|f: &mut Forward| f.case.journal[0].author.organisation = other.clone())),
            (
                "attachment",
                Box::new(|f: &mut Forward| {
                    let mut a = sample::typical_case().attachments.first().cloned().unwrap_or_else(|| Attachment {
                        id: ItemId::new_random(),
                        file_name: "a.txt".into(),
                        media_type: MediaType::parse("text/plain").unwrap(),
                        size: 1,
                        sha256: Sha256Hex::parse("0".repeat(64)).unwrap(),
                        content: None,
                        uri: Some("https://example.invalid/a".into()),
                        added_by: mila.clone(),
                        added_at: at("2026-11-27T09:00:00+01:00"),
                    });
                    a.added_by = other.clone();
                    f.case.attachments.push(a);
                }),
            ),
        ];
        for (what, forge) in forged {
            let mut g = f.clone();
            forge(&mut g);
            let e = case_from_forward(&g, &mila, &bela).unwrap_err();
            assert_eq!(e.code, ErrorCode::SenderMismatch, "{what}: {e}");
        }
    }
}
