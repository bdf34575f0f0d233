//! Chains of parties (use case 2.3, issue 9): the organisation working on a case escalates it to the next support
//! level — a service desk or MiLa (1st) to the operator (2nd), the operator to its vendor (3rd) — and status flows
//! back along the chain.
//!
//! - **Escalating** ([`Engine::escalate`]) case X that this node works on (as assignee) makes, in one
//!   transaction, a **child case** Y — this organisation's own restatement of X (new id, originator: us, assignee:
//!   the next level's organisation, status `new`, subject, description, classification, region, the next level;
//!   no requester, journal or attachments:
//!   every claim in a forward must be its sender's, and personal data travels only where it is needed), related
//!   `childOf` X, forwarded to it — and an update of X to its partner: the next support level, that organisation
//!   as a party, the relation `parentOf` Y, and `inProgress` if X was still `new` or `acknowledged`.
//! - **Status flows back** ([`Engine::propagate_to_parent`], called by `inbox` after a message of the vendor was
//!   applied to Y): when Y becomes `inProgress`, `pending` (with its reason), `onHold` or `resolved` (with the
//!   vendor's solution, as ours), X follows in the same transaction if the lifecycle lets it, and the change goes to
//!   X's partner; so the MiLa sees the vendor's progress without anybody re-typing it.
//! - **Closing flows down**: when X's originator closes X, children of X that are `resolved` are closed too.

use sdx_model::{
    Body, Case, CaseId, Close, ErrorCode, Forward, OrgKey, Party, PartyRole, RelatedCase, RelationType, Resolve,
    Solution, Status, StatusChange, SupportLevel, Update,
};
use sdx_store::{CaseRecord, EventKind, OurRole, Store, StoreTx};

use super::local::Outgoing;
use super::{Engine, EngineError, Sent, event, now, refusal};

/// What an escalation made.
#[derive(Debug, Clone)]
pub struct Escalated {
    /// The child case, forwarded to the vendor.
    pub child: Sent,
    /// The update of the parent case sent to its partner.
    pub parent: Sent,
    /// How the vendor was chosen (the directory's reason, or "named by the caller").
    pub reason: String,
}

impl<S: Store> Engine<S> {
    /// Escalate case `parent_id` (which this node works on as assignee) to `to`, or to the organisation the
    /// directory names for its service and region at the next support level; see the module docs. With `owner`
    /// (an API client limited to its own cases) the parent must be owned by it; the child case gets the parent's
    /// owner.
    pub async fn escalate(
        &self,
        parent_id: CaseId,
        to: Option<OrgKey>,
        note: Option<String>,
        owner: Option<&str>,
    ) -> Result<Escalated, EngineError> {
        let me = self.org().clone();
        let mut tx = self.inner.store.begin().await?;
        let parent = tx.get_case(parent_id).await?.ok_or(EngineError::NotFound(parent_id))?;
        super::local::check_owner(&parent, owner)?;
        if parent.our_role != OurRole::Assignee || parent.case.assignee != me {
            return Err(refusal(ErrorCode::NotPermitted, "only the organisation working on a case escalates it").into());
        }
        if parent.case.status.is_terminal() || parent.case.status == Status::Resolved {
            let detail = format!("a `{}` case is not escalated", parent.case.status);
            return Err(refusal(ErrorCode::InvalidTransition, detail).into());
        }
        let level = match parent.case.support_level {
            SupportLevel::FirstLevel => SupportLevel::SecondLevel,
            SupportLevel::SecondLevel => SupportLevel::ThirdLevel,
            SupportLevel::ThirdLevel => {
                return Err(refusal(ErrorCode::InvalidTransition, "a case at thirdLevel has no level above").into());
            }
        };
        let (vendor, name, reason) = match to {
            Some(org) => {
                let name = org.to_string();
                (org, name, "named by the caller".to_string())
            }
            None => {
                let r = crate::directory::route_case(self, &parent.case, level, &[])
                    .map_err(|e| refusal(ErrorCode::WrongRecipient, e.to_string()))?;
                (r.org, r.name, format!("directory version {}: {}", r.directory_version, r.reason))
            }
        };
        if vendor == me || vendor == parent.partner {
            return Err(refusal(ErrorCode::WrongRecipient, format!("{vendor} is already a party of the chain")).into());
        }
        let Some(peer) = self.peer(&vendor) else { return Err(EngineError::UnknownPeer(vendor)) };
        let at = now();
        let child = child_case(&parent.case, &me, &vendor, &name, level, at);
        let forward = Forward { case: child.clone(), note };
        sdx_model::lifecycle::case_from_forward(&forward, &me, &vendor)?;
        if let Some(i) = sdx_model::rules::check_case_issues(&child).into_iter().next() {
            return Err(refusal(i.code, format!("{} (at {})", i.message, i.pointer)).into());
        }
        if let Some(caps) = &peer.capabilities {
            caps.check(None, &child)
                .map_err(|u| refusal(u.code, format!("{vendor} cannot take this: {}", u.detail)))?;
        }
        let rec = CaseRecord {
            case: child.clone(),
            partner: vendor.clone(),
            our_role: OurRole::Originator,
            updated_at: at,
            owner: parent.owner.clone(),
        };
        tx.put_case(&rec, None).await?;
        let out = Outgoing {
            to: vendor.clone(),
            case_id: child.case_id,
            body: Body::Forward(forward),
            created_at: at,
            acknowledged: None,
        };
        let child_message = self.enqueue(&mut tx, out, None).await?;
        let detail = format!("escalation of case {parent_id} to {vendor} ({reason})");
        tx.add_event(&event(child.case_id, EventKind::Routed, None, detail)).await?;
        // The parent: third level, the vendor a party, the relation, and in progress.
        let mut update = Update {
            revision: 0,
            support_level: Some(level),
            related_cases: vec![RelatedCase { case_id: child.case_id, relation: RelationType::ParentOf }],
            ..Update::default()
        };
        if !parent.case.parties.iter().any(|p| p.organisation == vendor) {
            update.parties.push(Party { role: role_at(level), organisation: vendor.clone(), name, contact: None });
        }
        if matches!(parent.case.status, Status::New | Status::Acknowledged) {
            update.status = Some(Status::InProgress);
        }
        let mut body = Body::Update(update);
        let (parent_message, parent_case) = self.change_in(&mut tx, &parent, &mut body, at).await?;
        let detail = format!("escalated to {vendor} as case {} ({reason})", child.case_id);
        tx.add_event(&event(parent_id, EventKind::Routed, Some(parent_message), detail)).await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        tracing::info!(case_id = %parent_id, child = %child.case_id, vendor = %vendor, "case escalated");
        Ok(Escalated {
            child: Sent { message_id: child_message, case: child, replayed: false },
            parent: Sent { message_id: parent_message, case: parent_case, replayed: false },
            reason,
        })
    }

    /// After a message of its partner was applied to `child` (in `tx`): if `child` is a case we escalated
    /// (`childOf` a case we work on), let the parent follow its status; see the module docs. Returns whether the
    /// parent changed.
    pub(super) async fn propagate_to_parent(
        &self,
        tx: &mut S::Tx,
        before: &Case,
        child: &Case,
    ) -> Result<bool, EngineError> {
        if child.status == before.status || &child.originator != self.org() {
            return Ok(false);
        }
        let Some(parent_id) =
            child.related_cases.iter().find(|r| r.relation == RelationType::ChildOf).map(|r| r.case_id)
        else {
            return Ok(false);
        };
        let Some(parent) = tx.get_case(parent_id).await? else { return Ok(false) };
        if parent.our_role != OurRole::Assignee || &parent.case.assignee != self.org() {
            return Ok(false);
        }
        let target = child.status;
        if parent.case.status == target && target != Status::Pending {
            return Ok(false);
        }
        if !parent.case.status.can_transition_to(target) {
            let detail = format!(
                "case {} of {} is `{target}`; this case cannot follow from `{}`",
                child.case_id, child.assignee, parent.case.status
            );
            tx.add_event(&event(parent_id, EventKind::Reported, None, detail)).await?;
            return Ok(false);
        }
        let mut body = match target {
            Status::InProgress | Status::OnHold | Status::Pending => Body::Update(Update {
                revision: 0,
                status: Some(target),
                pending_reason: child.pending_reason,
                status_reason: Some(format!("status of the escalation {} at {}", child.case_id, child.assignee)),
                ..Update::default()
            }),
            Status::Resolved => {
                let Some(s) = &child.solution else { return Ok(false) };
                Body::Resolve(Resolve {
                    revision: 0,
                    solution: Solution {
                        code: s.code,
                        text: s.text.clone(),
                        resolved_at: now(),
                        resolved_by: self.org().clone(),
                    },
                    journal: Vec::new(),
                })
            }
            _ => return Ok(false),
        };
        let (id, _) = self.change_in(tx, &parent, &mut body, now()).await?;
        let detail = format!("follows the escalation {} at {}: `{target}`", child.case_id, child.assignee);
        tx.add_event(&event(parent_id, EventKind::StatusChanged, Some(id), detail)).await?;
        self.inner.wake.notify_one();
        Ok(true)
    }

    /// After the originator's message was applied to `parent` (in `tx`): if it closed the case, close its
    /// resolved escalations too.
    pub(super) async fn close_children(&self, tx: &mut S::Tx, before: &Case, parent: &Case) -> Result<(), EngineError> {
        if parent.status != Status::Closed || before.status == Status::Closed {
            return Ok(());
        }
        for r in parent.related_cases.iter().filter(|r| r.relation == RelationType::ParentOf) {
            let Some(child) = tx.get_case(r.case_id).await? else { continue };
            if child.our_role != OurRole::Originator || child.case.status != Status::Resolved {
                continue;
            }
            let mut body = Body::Close(Close { revision: 0, closure_code: None, note: None });
            self.change_in(tx, &child, &mut body, now()).await?;
            self.inner.wake.notify_one();
        }
        Ok(())
    }
}

/// The role of the organisation that works on a case at `level`.
fn role_at(level: SupportLevel) -> PartyRole {
    match level {
        SupportLevel::FirstLevel => PartyRole::ServiceDesk,
        SupportLevel::SecondLevel => PartyRole::Bela,
        SupportLevel::ThirdLevel => PartyRole::Vendor,
    }
}

/// The child case: our restatement of `parent` for `vendor`, at `level`.
fn child_case(
    parent: &Case,
    me: &OrgKey,
    vendor: &OrgKey,
    vendor_name: &str,
    level: SupportLevel,
    at: sdx_model::Timestamp,
) -> Case {
    let my_party = parent.parties.iter().find(|p| &p.organisation == me).cloned().unwrap_or_else(|| Party {
        role: PartyRole::Bela,
        organisation: me.clone(),
        name: me.to_string(),
        contact: None,
    });
    Case {
        case_id: CaseId::new_random(),
        revision: 0,
        references: Vec::new(),
        ticket_type: parent.ticket_type,
        status: Status::New,
        pending_reason: None,
        status_history: vec![StatusChange {
            status: Status::New,
            pending_reason: None,
            changed_at: at,
            changed_by: me.clone(),
            reason: None,
        }],
        impact: parent.impact,
        urgency: parent.urgency,
        priority: parent.priority,
        category: parent.category.clone(),
        region: parent.region.clone(),
        support_level: level,
        channel: None,
        parties: vec![
            my_party,
            Party {
                role: PartyRole::Vendor,
                organisation: vendor.clone(),
                name: vendor_name.to_string(),
                contact: None,
            },
        ],
        originator: me.clone(),
        assignee: vendor.clone(),
        requester: None,
        subject: parent.subject.clone(),
        description: parent.description.clone(),
        created_at: at,
        updated_at: at,
        journal: Vec::new(),
        attachments: Vec::new(),
        solution: None,
        related_cases: vec![RelatedCase { case_id: parent.case_id, relation: RelationType::ChildOf }],
        service_level: parent.service_level.clone(),
    }
}
