//! Rerouting a case its assignee rejected as not responsible (issue 9, `docs/routing.md`). When the partner's
//! `reject` with reason `notResponsible` is applied to a case this node forwarded, and the node routes by a
//! directory, the case goes — in the same transaction — to the next organisation the directory names for its
//! service, region and support level: every organisation this case was forwarded to before is passed over. What is
//! sent is the case as this node first forwarded it (every claim in it is ours), with the new assignee as assignee
//! and party; our copy becomes that case with the new partner. If nobody is left, the case stays here, rejected,
//! and its timeline says why. Either way a `routed` event records it: nothing disappears silently.
//!
//! The other end: a node that checks its own responsibility (`[directory] check_responsibility`) rejects a new
//! case as not responsible, in the transaction that stores it, when the directory names other organisations for
//! its service, region and level ([`Engine::reject_if_not_responsible`]).

use sdx_model::{Body, CaseId, Forward, MessageType, OrgKey, PartyRole, Reject, RejectionReason, SupportLevel};
use sdx_store::{CaseRecord, Direction, EventKind, OurRole, Store, StoreTx};

use super::inbox::decode_stored;
use super::local::Outgoing;
use super::{Engine, EngineError, event, now};
use crate::directory::{self, Routed};

impl<S: Store> Engine<S> {
    /// After `body` from `from` was applied to case `case_id` in `tx`: reroute the case if it was a rejection as
    /// not responsible of a case we forwarded and this node has a directory. Returns the new assignee, if any.
    pub(super) async fn reroute_if_rejected(
        &self,
        tx: &mut S::Tx,
        case_id: CaseId,
        from: &OrgKey,
        body: &Body,
    ) -> Result<Option<OrgKey>, EngineError> {
        let Body::Reject(reject) = body else { return Ok(None) };
        if reject.reason != RejectionReason::NotResponsible || self.directory().is_none() {
            return Ok(None);
        }
        let Some(rec) = tx.get_case(case_id).await? else { return Ok(None) };
        if rec.our_role != OurRole::Originator || &rec.partner != from {
            return Ok(None);
        }
        let messages = tx.case_messages(case_id).await?;
        let forwards: Vec<_> = messages
            .iter()
            .filter(|m| m.direction == Direction::Out && m.message_type == MessageType::Forward)
            .collect();
        let Some(first) = forwards.iter().find(|m| &m.peer == from) else { return Ok(None) };
        let Body::Forward(original) = decode_stored(first)?.body else { return Ok(None) };
        let tried: Vec<OrgKey> = forwards.iter().map(|m| m.peer.clone()).collect();
        let why = match &reject.text {
            Some(t) => format!("{from} rejected it as not responsible ({t})"),
            None => format!("{from} rejected it as not responsible"),
        };
        let case = &original.case;
        let routed = directory::route_case(self, case, case.support_level, &tried);
        let Routed { org: to, name, reason, directory_version } = match routed {
            Ok(r) => r,
            Err(e) => {
                let detail = format!("{why}; not rerouted: {e}; the case stays with this organisation");
                tx.add_event(&event(case_id, EventKind::Routed, None, detail)).await?;
                return Ok(None);
            }
        };
        let mut new = case.clone();
        new.assignee = to.clone();
        let role = if new.support_level == SupportLevel::ThirdLevel { PartyRole::Vendor } else { PartyRole::Bela };
        new.parties.retain(|p| &p.organisation != from || p.organisation == new.originator);
        if !new.parties.iter().any(|p| p.organisation == to) {
            new.parties.push(sdx_model::Party { role, organisation: to.clone(), name: name.clone(), contact: None });
        }
        let at = now();
        let forward = Forward { case: new.clone(), note: original.note.clone() };
        let checked = sdx_model::rules::check_case_issues(&new)
            .into_iter()
            .next()
            .map(|i| format!("{} (at {})", i.message, i.pointer))
            .or_else(|| sdx_model::lifecycle::case_from_forward(&forward, self.org(), &to).err().map(|r| r.message))
            .or_else(|| {
                let caps = self.peer(&to).and_then(|p| p.capabilities.clone())?;
                caps.check(None, &new).err().map(|u| u.to_string())
            });
        if let Some(problem) = checked {
            let detail = format!("{why}; not rerouted to {to}: {problem}; the case stays with this organisation");
            tx.add_event(&event(case_id, EventKind::Routed, None, detail)).await?;
            return Ok(None);
        }
        let (our_role, owner) = (OurRole::Originator, rec.owner.clone());
        let updated = CaseRecord { case: new, partner: to.clone(), our_role, updated_at: at, owner };
        tx.put_case(&updated, Some(rec.case.revision)).await?;
        let detail = format!("{why}; rerouted to {to} ({name}), directory version {directory_version}: {reason}");
        tx.add_event(&event(case_id, EventKind::Routed, None, detail)).await?;
        let out =
            Outgoing { to: to.clone(), case_id, body: Body::Forward(forward), created_at: at, acknowledged: None };
        self.enqueue(tx, out, None).await?;
        self.inner.wake.notify_one();
        tracing::info!(case_id = %case_id, from = %from, to = %to, "case rerouted after a rejection as not responsible");
        Ok(Some(to))
    }

    /// After a new case from a partner was stored in `tx` (its forward recorded as received): if this node checks
    /// its own responsibility and the directory names other organisations for the case's service, region and
    /// level, reject it as not responsible — with the directory's explanation as text and the organisation it names
    /// first as suggestion — so that the originator's node routes it on. The rejection is sent after the receipt.
    pub(super) async fn reject_if_not_responsible(&self, tx: &mut S::Tx, case_id: CaseId) -> Result<(), EngineError> {
        if !self.checks_responsibility() {
            return Ok(());
        }
        let Some(rec) = tx.get_case(case_id).await? else { return Ok(()) };
        if rec.our_role != OurRole::Assignee {
            return Ok(());
        }
        let Some(Err((why, first))) = directory::responsible(self, &rec.case) else { return Ok(()) };
        let text = format!("not responsible by the directory ({why})");
        let mut body = Body::Reject(Reject {
            revision: 0,
            reason: RejectionReason::NotResponsible,
            text: Some(text.clone()),
            suggested_assignee: Some(first),
        });
        self.change_in(tx, &rec, &mut body, now()).await?;
        tx.add_event(&event(case_id, EventKind::Routed, None, format!("rejected: {text}"))).await?;
        self.inner.wake.notify_one();
        tracing::info!(case_id = %case_id, "case rejected as not responsible by the directory");
        Ok(())
    }
}
