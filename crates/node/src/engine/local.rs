//! This organisation's own changes: a case created and forwarded, or a change of a case we hold. Each is applied to
//! our copy with the lifecycle rules and, in the same transaction, sealed (with the next sequence number and the
//! partner's last sequence number we applied, `acknowledgedSequence`) and put into the outbox.

use sdx_model::lifecycle;
use sdx_model::{Body, Case, CaseId, ErrorCode, Message, MessageId, OrgKey, Timestamp};
use sdx_store::{CaseRecord, Delivery, Direction, EventKind, MessageRecord, MessageState, OurRole};
use sdx_store::{Store, StoreTx};

use super::{Engine, EngineError, Sent, event, now, refusal, status_event};
use crate::protocol::Sealed;

/// The `revision` a body says it leads to.
pub(super) fn set_revision(body: &mut Body, rev: u32) {
    match body {
        Body::Update(u) => u.revision = rev,
        Body::Resolve(r) => r.revision = rev,
        Body::HandBack(h) => h.revision = rev,
        Body::Close(c) => c.revision = rev,
        Body::Reopen(r) => r.revision = rev,
        Body::Reject(r) => r.revision = rev,
        Body::Forward(_) | Body::Receipt(_) | Body::ServiceNotice(_) => {}
    }
}

/// How a message to the outbox is to be sealed.
pub(super) struct Outgoing {
    /// To whom.
    pub to: OrgKey,
    /// About which case.
    pub case_id: CaseId,
    /// What.
    pub body: Body,
    /// When the change was made (the message's `createdAt`; the case records the same time).
    pub created_at: Timestamp,
    /// The partner's last sequence number applied here (absent on the forward).
    pub acknowledged: Option<u64>,
}

/// The refusal of a change the partner's published capabilities cannot take (the directory's `capabilities`).
fn partner_cannot(partner: &OrgKey, u: sdx_directory::Unsupported) -> EngineError {
    refusal(u.code, format!("{partner} cannot take this (its capabilities in the directory): {}", u.detail)).into()
}

/// Store the sealed outgoing message `rec` and put it into the outbox, due at once (its `stored_at`).
pub(super) async fn store_outgoing<T: StoreTx>(tx: &mut T, rec: &MessageRecord) -> Result<(), EngineError> {
    tx.insert_message(rec).await?;
    tx.enqueue(&Delivery::pending(rec.message_id, rec.peer.clone(), rec.stored_at)).await?;
    Ok(())
}

/// The earlier change made with idempotency `key`, if there was one, with the case as it is now.
async fn replayed<T: StoreTx>(tx: &mut T, key: Option<&str>) -> Result<Option<Sent>, EngineError> {
    let Some(key) = key else { return Ok(None) };
    let Some(done) = tx.idempotent(key).await? else { return Ok(None) };
    let rec = tx.get_case(done.case_id).await?.ok_or(EngineError::NotFound(done.case_id))?;
    Ok(Some(Sent { message_id: done.message_id, case: rec.case, replayed: true }))
}

/// What [`Engine::forward_with`] takes besides the case.
#[derive(Debug, Default, Clone)]
pub struct Forwarding<'a> {
    /// Forward once per key (see [`Engine::forward_keyed`]).
    pub key: Option<&'a str>,
    /// Why the directory chose the assignee, if it did.
    pub routing: Option<String>,
    /// The API client that owns the new case.
    pub owner: Option<String>,
}

/// Refuse a change of `rec` by a client limited to the cases `owner` owns, if the case is not one of them.
pub(super) fn check_owner(rec: &CaseRecord, owner: Option<&str>) -> Result<(), EngineError> {
    match owner {
        Some(me) if rec.owner.as_deref() != Some(me) => Err(refusal(
            ErrorCode::NotPermitted,
            format!("case {} belongs to another ticket system of this organisation", rec.case.case_id),
        )
        .into()),
        _ => Ok(()),
    }
}

/// Remember, in the change's transaction, which message the change with idempotency `key` made.
async fn remember<T: StoreTx>(
    tx: &mut T,
    key: Option<&str>,
    case_id: CaseId,
    message_id: MessageId,
    at: Timestamp,
) -> Result<(), EngineError> {
    if let Some(key) = key {
        tx.put_idempotent(key, sdx_store::IdempotentResult { case_id, message_id }, at).await?;
    }
    Ok(())
}

impl<S: Store> Engine<S> {
    /// Create a case here and forward it to its assignee.
    pub async fn forward(&self, case: Case, note: Option<String>) -> Result<Sent, EngineError> {
        self.forward_keyed(case, note, None).await
    }

    /// [`Engine::forward`], once per idempotency `key`: a second call with the same key applies nothing and
    /// answers with the first call's message and the case as it is now.
    pub async fn forward_keyed(
        &self,
        case: Case,
        note: Option<String>,
        key: Option<&str>,
    ) -> Result<Sent, EngineError> {
        self.forward_with(case, note, Forwarding { key, ..Forwarding::default() }).await
    }

    /// [`Engine::forward`] with the options of the local API: an idempotency key, why the directory chose the
    /// assignee (kept in the case's timeline as a `routed` event, in the forward's transaction) and the API
    /// client that owns the new case (`crate::clients`).
    pub async fn forward_with(
        &self,
        case: Case,
        note: Option<String>,
        opts: Forwarding<'_>,
    ) -> Result<Sent, EngineError> {
        let Forwarding { key, routing, owner } = opts;
        let me = &self.inner.me;
        let to = case.assignee.clone();
        let Some(peer) = self.peer(&to) else {
            return Err(EngineError::UnknownPeer(to));
        };
        if case.originator != me.org {
            return Err(refusal(ErrorCode::NotPermitted, "a node forwards the cases it originates").into());
        }
        if let Some(i) = sdx_model::rules::check_case_issues(&case).into_iter().next() {
            return Err(refusal(i.code, format!("{} (at {})", i.message, i.pointer)).into());
        }
        if let Some(caps) = &peer.capabilities {
            caps.check(None, &case).map_err(|u| partner_cannot(&to, u))?;
        }
        let forward = sdx_model::Forward { case: case.clone(), note };
        // What the assignee will check (every authorship claim is ours), refused here already.
        lifecycle::case_from_forward(&forward, &me.org, &to)?;
        // A new case's first message has sequence number 1: seal it before taking the writer.
        let at = now();
        let out = Outgoing {
            to: to.clone(),
            case_id: case.case_id,
            body: Body::Forward(forward),
            created_at: at,
            acknowledged: None,
        };
        let presealed = self.seal_out(&out, 1)?;
        let mut tx = self.inner.store.begin().await?;
        if let Some(sent) = replayed(&mut tx, key).await? {
            return Ok(sent);
        }
        if tx.get_case(case.case_id).await?.is_some() {
            return Err(refusal(ErrorCode::InconsistentCase, format!("case {} exists already", case.case_id)).into());
        }
        let rec = CaseRecord { case: case.clone(), partner: to, our_role: OurRole::Originator, updated_at: at, owner };
        tx.put_case(&rec, None).await?;
        if let Some(why) = routing {
            tx.add_event(&event(case.case_id, EventKind::Routed, None, why)).await?;
        }
        let message_id = self.enqueue(&mut tx, out, Some(presealed)).await?;
        remember(&mut tx, key, case.case_id, message_id, at).await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(Sent { message_id, case, replayed: false })
    }

    /// Give case `case_id` to the API client `owner` (or to nobody), by the operator client `by`: kept with the
    /// case and as an `ownerChanged` event in its timeline (which the new owner's change feed shows). Nothing is
    /// sent: the owner is this organisation's own business. Returns the case as stored now.
    pub async fn set_owner(&self, case_id: CaseId, owner: Option<String>, by: &str) -> Result<CaseRecord, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let rec = tx.get_case(case_id).await?.ok_or(EngineError::NotFound(case_id))?;
        if rec.owner == owner {
            return Ok(rec);
        }
        let name = |o: &Option<String>| o.clone().unwrap_or_else(|| "nobody".into());
        let detail = format!("owner: {} → {} (by {by})", name(&rec.owner), name(&owner));
        let updated = CaseRecord { owner, updated_at: now(), ..rec.clone() };
        tx.put_case(&updated, Some(rec.case.revision)).await?;
        tx.add_event(&event(case_id, EventKind::OwnerChanged, None, detail)).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Apply a local change (update, resolve, hand back, close, reopen, reject) and send it to the partner.
    pub async fn change(&self, case_id: CaseId, body: Body) -> Result<Sent, EngineError> {
        self.change_keyed(case_id, body, None).await
    }

    /// [`Engine::change`], once per idempotency `key`: a second call with the same key applies nothing and
    /// answers with the first call's message and the case as it is now (even if the first was about another
    /// case: the key names one change).
    pub async fn change_keyed(&self, case_id: CaseId, body: Body, key: Option<&str>) -> Result<Sent, EngineError> {
        self.change_as(case_id, body, key, None).await
    }

    /// [`Engine::change_keyed`] by an API client limited to the cases it owns (`owner`, see `crate::clients`):
    /// a case owned by anybody else is refused with `notPermitted`, in the change's transaction.
    pub async fn change_as(
        &self,
        case_id: CaseId,
        mut body: Body,
        key: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Sent, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        if let Some(sent) = replayed(&mut tx, key).await? {
            return Ok(sent);
        }
        let rec = tx.get_case(case_id).await?.ok_or(EngineError::NotFound(case_id))?;
        check_owner(&rec, owner)?;
        let at = now();
        let (message_id, new) = self.change_in(&mut tx, &rec, &mut body, at).await?;
        remember(&mut tx, key, case_id, message_id, at).await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(Sent { message_id, case: new, replayed: false })
    }

    /// Apply our change `body` to the case of `rec` (locked in `tx`), checked by the lifecycle and the partner's
    /// capabilities, store it and put the message into the outbox, in `tx`. Returns the message and the case.
    pub(super) async fn change_in(
        &self,
        tx: &mut S::Tx,
        rec: &CaseRecord,
        body: &mut Body,
        at: Timestamp,
    ) -> Result<(MessageId, Case), EngineError> {
        let me = &self.inner.me;
        let case_id = rec.case.case_id;
        let new = lifecycle::apply(&rec.case, &me.org, &rec.partner, body, at)?;
        if let Some(caps) = self.peer(&rec.partner).and_then(|p| p.capabilities.clone()) {
            caps.check(Some(&rec.case), &new).map_err(|u| partner_cannot(&rec.partner, u))?;
        }
        set_revision(body, new.revision);
        let updated = CaseRecord { case: new.clone(), updated_at: at, ..rec.clone() };
        tx.put_case(&updated, Some(rec.case.revision)).await?;
        let acknowledged = tx.last_in_sequence(case_id, &rec.partner).await?;
        let out = Outgoing {
            to: rec.partner.clone(),
            case_id,
            body: body.clone(),
            created_at: at,
            acknowledged: Some(acknowledged),
        };
        let message_id = self.enqueue(tx, out, None).await?;
        if let Some(ev) = status_event(case_id, &rec.case, &new, Some(message_id)) {
            tx.add_event(&ev).await?;
        }
        Ok((message_id, new))
    }

    /// Build, check and seal the message with sequence number `seq` (CPU work: done before the transaction
    /// where the number is known in advance).
    pub(super) fn seal_out(&self, out: &Outgoing, seq: u64) -> Result<(Message, Sealed), EngineError> {
        let me = &self.inner.me;
        let mut header =
            me.header(out.body.message_type(), &out.to, Some(out.case_id), Some(seq), out.acknowledged, None);
        header.created_at = out.created_at;
        let m = Message { header, body: out.body.clone() };
        if let Some(d) = sdx_codec::validate::check(&m).into_iter().next() {
            return Err(refusal(d.code, d.to_string()).into());
        }
        let sealed = me.seal(&m)?;
        Ok((m, sealed))
    }

    /// Seal `out` with the next sequence number of its case and peer and put it into the outbox. `presealed` is
    /// the message already sealed with the number expected (used if that is the number).
    pub(super) async fn enqueue(
        &self,
        tx: &mut S::Tx,
        out: Outgoing,
        presealed: Option<(Message, Sealed)>,
    ) -> Result<MessageId, EngineError> {
        let seq = tx.next_out_sequence(out.case_id, &out.to).await?;
        self.enqueue_numbered(tx, &out, seq, presealed).await
    }

    /// Put `out`, sealed with sequence number `seq`, into the outbox.
    pub(super) async fn enqueue_numbered(
        &self,
        tx: &mut S::Tx,
        out: &Outgoing,
        seq: u64,
        presealed: Option<(Message, Sealed)>,
    ) -> Result<MessageId, EngineError> {
        let (m, Sealed { jws, digest }) = match presealed {
            Some((m, sealed)) if m.header.sequence == Some(seq) => (m, sealed),
            _ => self.seal_out(out, seq)?,
        };
        let at = now();
        let id = m.header.message_id;
        let record = MessageRecord {
            message_id: id,
            case_id: Some(out.case_id),
            direction: Direction::Out,
            peer: out.to.clone(),
            message_type: m.header.message_type,
            sequence: Some(seq),
            created_at: m.header.created_at,
            stored_at: at,
            jws,
            digest,
            state: MessageState::Pending,
        };
        store_outgoing(tx, &record).await?;
        let detail = format!("{} #{seq} to {}", m.header.message_type, out.to);
        tx.add_event(&event(out.case_id, EventKind::MessageSent, Some(id), detail)).await?;
        Ok(id)
    }
}
