//! Concurrent changes of one case by its two organisations, and the rule that makes both copies end identical.
//!
//! Each node applies its own changes at once (the ticket system sees them) and sends them; the partner's changes
//! arrive later. When both change the case while their messages cross — the BeLa resolves while the MiLa cancels —
//! the two nodes would apply the two changes in opposite orders. The rule:
//!
//! 1. **The assignee side orders.** Of the two organisations of a case, the one the case was forwarded to (the
//!    *assignee side*, whatever `assignee` says later) decides the order: it applies the originator's changes as
//!    they arrive, on top of its own, and each of its own messages says, in `acknowledgedSequence`, how many of
//!    the originator's messages (by sequence number) it had applied when it made it.
//! 2. **Both replay the same order.** The one order of a case's changes is: the forward; then, for each of the
//!    assignee side's changes in sequence order, first the originator's changes it acknowledged that are not yet
//!    placed, then it; then the originator's remaining changes ([`order`]). Applying that order with
//!    [`lifecycle::apply`](crate::lifecycle::apply) from the forward on gives the case ([`replay`]); a change the
//!    lifecycle refuses at its place is left out — it *lost* — and the case goes on without it.
//! 3. **No change disappears silently.** The assignee side refuses a losing change of the originator with a signed
//!    negative receipt that says why and what state won; the originator's node then leaves it out too and records
//!    a conflict in the case's timeline.
//!
//! The assignee side's copy is always the result of that order (it applies each change on arrival at its place).
//! The originator side's copy is the same once it has all the assignee side's messages: its own changes that the
//! assignee side had not yet seen stay applied on top until the partner's messages place them. A change applied
//! provisionally may later be left out (it lost); the negative receipt says so for certain.

use std::collections::HashSet;

use crate::case::Case;
use crate::id::{MessageId, OrgKey, Timestamp};
use crate::lifecycle::{self, Refusal};
use crate::message::Body;

/// One change of a case: the body of a case message and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The message that carries it.
    pub message_id: MessageId,
    /// Its sequence number among its author's messages about the case (1 is the forward's).
    pub sequence: u64,
    /// The partner's last sequence number its author had applied when it made it (`acknowledgedSequence`).
    pub acknowledged: u64,
    /// When it was made (the message's `createdAt`): the time the case records for it.
    pub at: Timestamp,
    /// What it does.
    pub body: Body,
}

/// Which side made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The organisation that created and forwarded the case.
    Originator,
    /// The organisation the case was forwarded to; it orders concurrent changes.
    AssigneeSide,
}

/// The one order of a case's changes. `originator` and `assignee_side` are each side's changes in sequence order
/// (either may have gaps where changes were withdrawn). Acknowledgements that go backwards count as the highest
/// seen before (a well-behaved node never sends them).
pub fn order<'a>(originator: &'a [Change], assignee_side: &'a [Change]) -> Vec<(Side, &'a Change)> {
    let mut out = Vec::with_capacity(originator.len() + assignee_side.len());
    let mut o = originator.iter().peekable();
    let mut acknowledged = 0;
    for a in assignee_side {
        acknowledged = acknowledged.max(a.acknowledged);
        while let Some(c) = o.next_if(|c| c.sequence <= acknowledged) {
            out.push((Side::Originator, c));
        }
        out.push((Side::AssigneeSide, a));
    }
    out.extend(o.map(|c| (Side::Originator, c)));
    out
}

/// A change the replay left out.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    /// Its message.
    pub message_id: MessageId,
    /// Who made it.
    pub side: Side,
    /// Why the lifecycle refused it at its place.
    pub refusal: Refusal,
}

/// The case as the one order of its changes makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The case.
    pub case: Case,
    /// The changes left out, in order.
    pub left_out: Vec<LeftOut>,
}

/// Replay a case: the originator's first change must be the forward that created it; then every change in
/// [`order`], skipping those in `excluded` (changes already known to have lost, or withdrawn) and leaving out those
/// the lifecycle refuses at their place.
pub fn replay(
    originator_org: &OrgKey,
    assignee_side_org: &OrgKey,
    originator: &[Change],
    assignee_side: &[Change],
    excluded: &HashSet<MessageId>,
) -> Result<Replayed, Refusal> {
    let originator: Vec<Change> = originator.iter().filter(|c| !excluded.contains(&c.message_id)).cloned().collect();
    let assignee_side: Vec<Change> =
        assignee_side.iter().filter(|c| !excluded.contains(&c.message_id)).cloned().collect();
    let Some((first, _)) = originator.split_first() else {
        return Err(Refusal {
            code: crate::ErrorCode::UnknownCase,
            message: "no forward to replay the case from".into(),
        });
    };
    let Body::Forward(f) = &first.body else {
        return Err(Refusal {
            code: crate::ErrorCode::InconsistentCase,
            message: format!("the originator's first change is a {}, not the forward", first.body.message_type()),
        });
    };
    let mut case = lifecycle::case_from_forward(f, originator_org, assignee_side_org)?;
    let mut left_out = Vec::new();
    for (side, c) in order(&originator, &assignee_side).into_iter().skip(1) {
        let (author, reader) = match side {
            Side::Originator => (originator_org, assignee_side_org),
            Side::AssigneeSide => (assignee_side_org, originator_org),
        };
        match lifecycle::apply(&case, author, reader, &c.body, c.at) {
            Ok(next) => case = next,
            Err(refusal) => left_out.push(LeftOut { message_id: c.message_id, side, refusal }),
        }
    }
    Ok(Replayed { case, left_out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{self, BELA, MILA};
    use crate::*;

    fn org(s: &str) -> OrgKey {
        OrgKey::parse(s).unwrap()
    }
    fn at(minute: u32) -> Timestamp {
        Timestamp::parse(&format!("2026-11-27T10:{minute:02}:00+01:00")).unwrap()
    }
    fn change(sequence: u64, acknowledged: u64, minute: u32, body: Body) -> Change {
        Change { message_id: MessageId::new_random(), sequence, acknowledged, at: at(minute), body }
    }
    fn status(s: Status) -> Body {
        Body::Update(Update { revision: 0, status: Some(s), ..Update::default() })
    }
    fn forward() -> Change {
        let Body::Forward(f) = sample::typical_forward().body else { unreachable!() };
        change(1, 0, 0, Body::Forward(f))
    }
    fn resolve() -> Body {
        Body::Resolve(Resolve {
            revision: 0,
            solution: Solution {
                code: ResolutionCode::Fixed,
                text: "Behoben.".into(),
                resolved_at: at(20),
                resolved_by: org(BELA),
            },
            journal: vec![],
        })
    }

    #[test]
    fn order_places_originator_changes_by_acknowledgement() {
        let o = [forward(), change(2, 0, 5, status(Status::Cancelled)), change(3, 1, 9, status(Status::Cancelled))];
        let a = [change(1, 1, 2, status(Status::InProgress)), change(2, 2, 6, resolve())];
        let got: Vec<_> = order(&o, &a).into_iter().map(|(s, c)| (s, c.sequence)).collect();
        use Side::*;
        assert_eq!(
            got,
            [(Originator, 1), (AssigneeSide, 1), (Originator, 2), (AssigneeSide, 2), (Originator, 3)],
            "each assignee-side change comes after what it acknowledged and before the rest"
        );
    }

    /// BeLa resolves while MiLa cancels: the cancel reaches BeLa after the resolve and loses there; MiLa, replaying
    /// BeLa's resolve (which had not seen the cancel) before its own cancel, comes to the same case.
    #[test]
    fn resolve_wins_over_a_crossing_cancel_on_both_sides() {
        let (mila, bela) = (org(MILA), org(BELA));
        let fwd = forward();
        let cancel = change(2, 0, 11, status(Status::Cancelled));
        let work = change(1, 1, 5, status(Status::InProgress));
        let res = change(2, 1, 10, resolve());
        // MiLa's view before BeLa's messages arrive: its cancel applies.
        let early = replay(&mila, &bela, &[fwd.clone(), cancel.clone()], &[], &HashSet::new()).unwrap();
        assert_eq!(early.case.status, Status::Cancelled);
        // With BeLa's messages (acknowledging only the forward): the cancel loses.
        let done = replay(&mila, &bela, &[fwd.clone(), cancel.clone()], &[work.clone(), res.clone()], &HashSet::new())
            .unwrap();
        assert_eq!(done.case.status, Status::Resolved);
        assert_eq!(done.left_out.len(), 1);
        assert_eq!((done.left_out[0].message_id, done.left_out[0].side), (cancel.message_id, Side::Originator));
        assert_eq!(done.left_out[0].refusal.code, ErrorCode::InvalidTransition);
        // BeLa's incremental copy: forward, inProgress, resolve, then the cancel arrives and is refused.
        let Body::Forward(f) = &fwd.body else { unreachable!() };
        let c = lifecycle::case_from_forward(f, &mila, &bela).unwrap();
        let c = lifecycle::apply(&c, &bela, &mila, &work.body, work.at).unwrap();
        let c = lifecycle::apply(&c, &bela, &mila, &res.body, res.at).unwrap();
        assert!(lifecycle::apply(&c, &mila, &bela, &cancel.body, cancel.at).is_err());
        assert_eq!(c, done.case, "both copies identical");
        // Knowing the cancel lost (its negative receipt), MiLa excludes it: same case, nothing left out.
        let known = replay(&mila, &bela, &[fwd, cancel.clone()], &[work, res], &HashSet::from([cancel.message_id]))
            .unwrap();
        assert_eq!((known.case, known.left_out.len()), (c, 0));
    }

    #[test]
    fn replay_needs_the_forward_first() {
        let (mila, bela) = (org(MILA), org(BELA));
        let none = replay(&mila, &bela, &[], &[], &HashSet::new()).unwrap_err();
        assert_eq!(none.code, ErrorCode::UnknownCase);
        let not_forward = replay(&mila, &bela, &[change(1, 0, 1, status(Status::Cancelled))], &[], &HashSet::new());
        assert_eq!(not_forward.unwrap_err().code, ErrorCode::InconsistentCase);
    }
}
