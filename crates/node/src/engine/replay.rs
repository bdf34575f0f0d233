//! Recomputing our copy of a case from its stored messages, in the one order of its changes
//! ([`sdx_model::convergence`]): when a partner's message was made before it had seen all of ours, when the
//! partner refused one of our changes, or when an operator skipped one of ours. The messages that count: ours that
//! are pending, delivered or dead (not rejected, skipped or superseded), and the partner's that were applied.

use sdx_model::convergence::{self, Change, Side};
use sdx_model::lifecycle::Refusal;
use sdx_model::{Case, MessageId};
use sdx_store::{CaseRecord, Direction, EventKind, MessageRecord, MessageState, OurRole};
use sdx_store::{Store, StoreTx};

use super::inbox::decode_stored;
use super::{Engine, EngineError, event, now, status_event};

fn counts(m: &MessageRecord) -> bool {
    match m.direction {
        Direction::Out => matches!(m.state, MessageState::Pending | MessageState::Delivered | MessageState::Dead),
        Direction::In => m.state == MessageState::Applied,
    }
}

impl<S: Store> Engine<S> {
    /// Replay the case of `rec` (locked by the caller's transaction) from its messages and store the result.
    /// Returns the case as it is now.
    pub(super) async fn recompute_all(&self, tx: &mut S::Tx, rec: &CaseRecord) -> Result<Case, EngineError> {
        // Without a focus there is nothing to refuse.
        Ok(self.replay_and_store(tx, rec, None).await?.1)
    }

    /// Replay the case of `rec` (locked by the caller's transaction) from its messages and store the result.
    /// `focus` is a received message being applied now (stored as applied): `Ok(Err(_))` if the replay left it
    /// out. A partner's message that was applied before and is left out now is recorded as a conflict.
    pub(super) async fn recompute(
        &self,
        tx: &mut S::Tx,
        rec: &CaseRecord,
        focus: Option<MessageId>,
    ) -> Result<Result<(), Refusal>, EngineError> {
        Ok(self.replay_and_store(tx, rec, focus).await?.0)
    }

    /// [`Self::recompute`], also returning the case as stored now.
    async fn replay_and_store(
        &self,
        tx: &mut S::Tx,
        rec: &CaseRecord,
        focus: Option<MessageId>,
    ) -> Result<(Result<(), Refusal>, Case), EngineError> {
        let case_id = rec.case.case_id;
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut stored = tx.case_messages(case_id).await?;
        // The message being applied now is stored, but its timeline event (through which the store finds a case's
        // messages) is written after it is applied.
        if let Some(f) = focus
            && !stored.iter().any(|m| m.message_id == f)
            && let Some(m) = tx.get_message(f).await?
        {
            stored.push(m);
        }
        for m in stored {
            if m.peer != rec.partner || !counts(&m) {
                continue;
            }
            let decoded = decode_stored(&m)?;
            let change = Change {
                message_id: m.message_id,
                sequence: decoded.header.sequence.unwrap_or(0),
                acknowledged: decoded.header.acknowledged_sequence.unwrap_or(0),
                at: decoded.header.created_at,
                body: decoded.body,
            };
            match m.direction {
                Direction::Out => ours.push(change),
                Direction::In => theirs.push(change),
            }
        }
        ours.sort_by_key(|c| c.sequence);
        theirs.sort_by_key(|c| c.sequence);
        let me = self.org();
        let (originator_org, assignee_org, originator, assignee) = match rec.our_role {
            OurRole::Originator => (me, &rec.partner, &ours, &theirs),
            OurRole::Assignee | OurRole::Both => (&rec.partner, me, &theirs, &ours),
        };
        let replayed = convergence::replay(originator_org, assignee_org, originator, assignee, &Default::default())
            .map_err(|r| {
                // No forward to start from: a broken store, not the partner's fault.
                EngineError::Store(sdx_store::Error::Corrupt(format!("case {case_id} cannot be replayed: {r}")))
            })?;
        let partner_side = match rec.our_role {
            OurRole::Originator => Side::AssigneeSide,
            OurRole::Assignee | OurRole::Both => Side::Originator,
        };
        let mut focus_result = Ok(());
        for l in &replayed.left_out {
            if Some(l.message_id) == focus {
                focus_result = Err(l.refusal.clone());
            } else if l.side == partner_side {
                // The partner applied it before us; it does not fit the one order any more (only a skipped change
                // of ours or nodes with other rules can do this).
                tracing::warn!(case_id = %case_id, message_id = %l.message_id, code = %l.refusal.code,
                    "a partner's change no longer applies after a replay");
                let detail =
                    format!("{}'s change no longer applies: [{}] {}", rec.partner, l.refusal.code, l.refusal.message);
                tx.add_event(&event(case_id, EventKind::Conflict, Some(l.message_id), detail)).await?;
            }
        }
        // The revision is the replay's count of applied changes, the same on both sides (it may go down when a
        // change of ours that was applied provisionally lost).
        let case = replayed.case;
        if case != rec.case {
            let updated = CaseRecord { case: case.clone(), updated_at: now(), ..rec.clone() };
            tx.put_case(&updated, Some(rec.case.revision)).await?;
            if let Some(ev) = status_event(case_id, &rec.case, &case, focus) {
                tx.add_event(&ev).await?;
            }
        }
        Ok((focus_result, case))
    }
}
