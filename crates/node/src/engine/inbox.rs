//! Messages from peers. Each is opened (verified) before anything is stored, then — in one transaction — the
//! case row and the (case, peer) sequence are locked, the message is deduplicated, ordered (an early one is held),
//! stored, applied at its place in the case's one order of changes, and answered with a signed receipt that is
//! stored too; the answer leaves only after the commit. A service notice (no case, no sequence) is deduplicated
//! the same way and stored as the notice's latest version if it is (`engine::notices`).
//!
//! A receipt quotes the message's digest exactly when this node keeps the message: a positive receipt always; a
//! negative one when the message was stored and judged, and refused (its sequence number is used up, later ones
//! follow); a negative receipt without a digest means nothing of the message was kept.

use sdx_crypto::jws;
use sdx_model::lifecycle::{self, Refusal};
use sdx_model::{Body, ErrorCode, Message, MessageId, OrgKey, ReceiptResult, Sha256Hex};
use sdx_store::{CaseRecord, Direction, EventKind, MessageRecord, MessageState, NoticeRecord, OurRole, ReceiptRecord};
use sdx_store::{Store, StoreTx};

use super::{Answer, Engine, EngineError, event, now, refusal, status_event};
use crate::protocol::{self, Opened, Sealed};

/// What became of one message of a batch before the transaction.
enum Opening {
    /// Verified, with its author and its positive receipt signed ahead.
    Opened(Box<(Opened, OrgKey, Sealed)>),
    /// Not opened: the answer says why.
    Refused(Answer),
}

impl<S: Store> Engine<S> {
    /// Handle a message that a peer POSTed over mutual TLS — or, in an envelope, that a hub relayed from its
    /// author (`crate::envelope`): then it is handled as if the author had posted it.
    pub async fn receive(&self, wire: &[u8], tls_peer: &OrgKey) -> Result<Answer, EngineError> {
        if crate::envelope::is_envelope(wire) {
            return match self.unwrap_envelope(wire, tls_peer) {
                Ok((inner, route)) => self.receive_direct(inner.as_bytes(), &route.author, Some(&route)).await,
                Err(answer) => Ok(answer),
            };
        }
        self.receive_direct(wire, tls_peer, None).await
    }

    /// The message inside an envelope relayed by the hub `tls_peer`, and the envelope's route: the envelope's
    /// signature and encryption checked (the inner message is opened, and checked against the route, by
    /// `receive_direct`).
    fn unwrap_envelope(&self, wire: &[u8], tls_peer: &OrgKey) -> Result<(String, crate::envelope::Route), Answer> {
        use crate::envelope;
        let problem = |code: ErrorCode, detail: String| Answer::Problem { code, detail };
        let from_hub = self
            .directory()
            .and_then(|h| h.current())
            .and_then(|d| d.organisation(tls_peer).map(|o| o.has_role(sdx_directory::Role::Hub)))
            .unwrap_or(false);
        if !from_hub {
            let detail = format!("envelopes come through a hub; {tls_peer} is not a hub of this node's directory");
            return Err(problem(ErrorCode::UnknownSender, detail));
        }
        let r = |r: Refusal| problem(r.code, r.message);
        let route = envelope::peek(wire).map_err(r)?;
        let me = &self.inner.me.org;
        if &route.reader != me {
            return Err(problem(
                ErrorCode::WrongRecipient,
                format!("the envelope is for {}, this node is {me}", route.reader),
            ));
        }
        let Some(author) = self.peer(&route.author) else {
            return Err(problem(ErrorCode::UnknownSender, format!("{} is not a peer of {me}", route.author)));
        };
        let (route, sealed) = envelope::open(wire, &route.author, author.key_for(wire)).map_err(r)?;
        let Some(key) = self.inner.decryption_key.get() else {
            return Err(problem(
                ErrorCode::DecryptionFailed,
                format!("{me} has no encryption key (keys.encryption_key)"),
            ));
        };
        let inner = envelope::decrypt(&sealed, key, &self.inner.unwrapped).map_err(r)?;
        Ok((inner, route))
    }

    /// Handle a message from `tls_peer` (its author); `route`: the envelope it came in, which must name it.
    async fn receive_direct(
        &self,
        wire: &[u8],
        tls_peer: &OrgKey,
        route: Option<&crate::envelope::Route>,
    ) -> Result<Answer, EngineError> {
        let started = std::time::Instant::now();
        let opened = match self.open_received(wire, tls_peer)? {
            Ok(o) => match route.map(|r| crate::envelope::check_route(r, &o.message.header)) {
                Some(Err(r)) => return Ok(Answer::Problem { code: r.code, detail: r.message }),
                _ => o,
            },
            Err(answer) => return Ok(answer),
        };
        let span = tracing::debug_span!("receive", peer = %tls_peer, message_id = %opened.message.header.message_id,
            case_id = ?opened.message.header.case_id);
        let _guard = span.enter();
        let receipt = self.accepted_receipt(&opened, tls_peer)?;
        let mut tx = self.inner.store.begin().await?;
        let (answer, stored) = self.apply_received(&mut tx, opened, tls_peer, receipt).await?;
        // An answer that stored nothing (a negative receipt without a digest, or the stored receipt of a
        // duplicate) leaves the store as it was: the transaction is rolled back.
        if stored {
            tx.commit().await?;
            self.inner.metrics.applied(started);
        }
        Ok(answer)
    }

    /// Handle several messages that a peer POSTed in one request: each is verified on its own, all are stored
    /// in one transaction (one durable commit), and each gets its own answer, in order. Nothing is answered
    /// before the commit; if it fails, no message counts as received. From a hub, a batch may hold envelopes of
    /// several authors: each is unwrapped and checked against its route as [`Engine::receive`] does.
    pub async fn receive_batch(&self, wires: &[&[u8]], tls_peer: &OrgKey) -> Result<Vec<Answer>, EngineError> {
        let started = std::time::Instant::now();
        // Opening (verification, decoding, the receipt signed ahead) is CPU work on each message alone: shared
        // between two threads for a batch, before the transaction.
        let openings = super::split_work(wires, |wire| self.open_one(wire, tls_peer));
        let mut answers = Vec::with_capacity(wires.len());
        // Each opened message with its author: the TLS peer, or for an envelope a hub relayed, the route's author.
        let mut opened: Vec<Option<(Opened, OrgKey, Sealed)>> = Vec::with_capacity(wires.len());
        for o in openings {
            match o? {
                Opening::Opened(o) => {
                    opened.push(Some(*o));
                    answers.push(None);
                }
                Opening::Refused(a) => {
                    opened.push(None);
                    answers.push(Some(a));
                }
            }
        }
        if opened.iter().any(Option::is_some) {
            // Apply in (case, sequence) order: every transaction takes the row locks of its cases in the same
            // order (no deadlock between concurrent batches on PostgreSQL), and a case's messages in sequence.
            let mut order: Vec<(usize, Opened, OrgKey, Sealed)> = Vec::with_capacity(opened.len());
            for (i, o) in opened.into_iter().enumerate() {
                if let Some((o, from, receipt)) = o {
                    order.push((i, o, from, receipt));
                }
            }
            order.sort_by_key(|(_, o, _, _)| (o.message.header.case_id, o.message.header.sequence));
            let mut tx = self.inner.store.begin().await?;
            let mut stored_any = false;
            for (i, o, from, receipt) in order {
                let (answer, stored) = self.apply_received(&mut tx, o, &from, receipt).await?;
                stored_any |= stored;
                answers[i] = Some(answer);
            }
            if stored_any {
                tx.commit().await?;
                self.inner.metrics.applied(started);
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// Open one message of a batch from `tls_peer` (unwrapping it first if it is an envelope a hub relayed), and
    /// sign its positive receipt ahead.
    fn open_one(&self, wire: &[u8], tls_peer: &OrgKey) -> Result<Opening, EngineError> {
        let (inner, from, route) = if crate::envelope::is_envelope(wire) {
            match self.unwrap_envelope(wire, tls_peer) {
                Ok((inner, route)) => (std::borrow::Cow::Owned(inner.into_bytes()), route.author.clone(), Some(route)),
                Err(a) => return Ok(Opening::Refused(a)),
            }
        } else {
            (std::borrow::Cow::Borrowed(wire), tls_peer.clone(), None)
        };
        match self.open_received(&inner, &from)? {
            Ok(o) => match route.map(|r| crate::envelope::check_route(&r, &o.message.header)) {
                Some(Err(r)) => Ok(Opening::Refused(Answer::Problem { code: r.code, detail: r.message })),
                _ => {
                    let receipt = self.accepted_receipt(&o, &from)?;
                    Ok(Opening::Opened(Box::new((o, from, receipt))))
                }
            },
            Err(a) => Ok(Opening::Refused(a)),
        }
    }

    /// Verify a received message: `Ok(Err(answer))` if it cannot be opened (the answer says why).
    fn open_received(&self, wire: &[u8], tls_peer: &OrgKey) -> Result<Result<Opened, Answer>, EngineError> {
        let me = &self.inner.me;
        let Some(peer) = self.peer(tls_peer) else {
            return Ok(Err(Answer::Problem {
                code: ErrorCode::UnknownSender,
                detail: format!("{tls_peer} is not a configured peer of {}", me.org),
            }));
        };
        match protocol::open(wire, peer.key_for(wire), tls_peer, &me.org) {
            Ok(o) => Ok(Ok(o)),
            Err(r) => Ok(Err(self.refuse_unopened(wire, tls_peer, r)?)),
        }
    }

    /// The positive receipt for an opened message, signed ahead (CPU work kept out of the transaction; used if
    /// the message is accepted).
    fn accepted_receipt(&self, opened: &Opened, tls_peer: &OrgKey) -> Result<Sealed, EngineError> {
        let me = &self.inner.me;
        let h = &opened.message.header;
        Ok(me.seal(&me.receipt(h.message_id, tls_peer, h.case_id, Some(opened.digest.clone()), vec![]))?)
    }

    /// Deduplicate, order, store and apply an opened message in `tx`, with its signed receipt (`accepted_receipt`,
    /// signed ahead, if it is accepted). Returns the answer and whether anything was stored (if
    /// not, the caller need not commit).
    async fn apply_received(
        &self,
        tx: &mut S::Tx,
        opened: Opened,
        tls_peer: &OrgKey,
        accepted_receipt: Sealed,
    ) -> Result<(Answer, bool), EngineError> {
        let me = &self.inner.me;
        let Opened { message: m, jws: kept, digest } = opened;
        let id = m.header.message_id;
        let case_message = !matches!(m.body, Body::Receipt(_) | Body::ServiceNotice(_));
        // For a case message, lock the case (if we have it) and then (case, peer): concurrent changes of one case
        // run one after the other, so the dedup and sequence checks below see what the others committed.
        let (existing, last_in) = match m.header.case_id {
            Some(case_id) if case_message => {
                let existing = tx.get_case(case_id).await?;
                (existing, Some(tx.last_in_sequence(case_id, tls_peer).await?))
            }
            _ => (None, None),
        };
        // Deduplicate: the same message again gets the same receipt; other content under a known id is a replay.
        if let Some(prev) = tx.get_message(id).await? {
            if prev.digest == digest
                && let Some(r) = tx.get_receipt(id, Direction::Out).await?
            {
                return Ok((Answer::Receipt { jws: r.jws, result: r.result }, false));
            }
            let r = refusal(ErrorCode::Replay, format!("message {id} is known with other content"));
            return Ok((self.negative(&m, None, r)?, false));
        }
        let at = now();
        let mut record = MessageRecord {
            message_id: id,
            case_id: m.header.case_id,
            direction: Direction::In,
            peer: tls_peer.clone(),
            message_type: m.header.message_type,
            sequence: m.header.sequence,
            created_at: m.header.created_at,
            stored_at: at,
            jws: kept,
            digest: digest.clone(),
            state: MessageState::Applied,
        };
        let mut result: Result<(), Refusal> = Ok(());
        match (&m.body, m.header.case_id, m.header.sequence) {
            (Body::Receipt(_), ..) => {
                let r = refusal(ErrorCode::SchemaViolation, "receipts travel in responses");
                return Ok((self.negative(&m, None, r)?, false));
            }
            (Body::ServiceNotice(n), None, None) => {
                // Stored as a message and, if it is the latest version of the notice, as the notice; a version
                // that arrives after a later one is kept as a message only (and answered positively).
                tx.insert_message(&record).await?;
                let notice = NoticeRecord {
                    origin: tls_peer.clone(),
                    notice: n.clone(),
                    message_id: id,
                    issued_at: m.header.created_at,
                    received_at: at,
                };
                let latest = tx.put_notice(&notice).await?;
                tracing::debug!(notice_id = %n.notice_id, latest, "service notice received");
            }
            (Body::ServiceNotice(_), ..) => {
                let r = refusal(ErrorCode::SchemaViolation, "a service notice carries no case id and no sequence");
                return Ok((self.negative(&m, None, r)?, false));
            }
            (_, Some(case_id), Some(seq)) => {
                let last = last_in.unwrap_or(0);
                if seq <= last {
                    let r = refusal(ErrorCode::OutOfOrder, format!("sequence {seq} was used already (last {last})"));
                    return Ok((self.negative(&m, None, r)?, false));
                }
                if seq > last + 1 {
                    record.state = MessageState::Held;
                    tx.insert_message(&record).await?;
                } else {
                    tx.insert_message(&record).await?;
                    result = self.apply_in_order(tx, &m, tls_peer, existing).await?;
                    if result.is_err() {
                        record.state = MessageState::Refused;
                    }
                    tx.set_last_in_sequence(case_id, tls_peer, seq).await?;
                    if result.is_ok() && matches!(m.body, Body::Forward(_)) {
                        self.reject_if_not_responsible(tx, case_id).await?;
                    }
                }
            }
            _ => {
                let r = refusal(ErrorCode::SchemaViolation, "case id and sequence required");
                return Ok((self.negative(&m, None, r)?, false));
            }
        }
        if let Some(case_id) = m.header.case_id {
            let detail = format!(
                "{} #{} from {tls_peer} ({})",
                m.header.message_type,
                m.header.sequence.unwrap_or(0),
                record.state.as_str()
            );
            tx.add_event(&event(case_id, EventKind::MessageReceived, Some(id), detail)).await?;
            if record.state != MessageState::Held {
                self.drain_held(tx, case_id, tls_peer).await?;
            }
        }
        let (sealed, rr) = match &result {
            Ok(()) => (accepted_receipt, ReceiptResult::Accepted),
            Err(r) => {
                let errors = protocol::receipt_errors(r);
                (me.seal(&me.receipt(id, tls_peer, m.header.case_id, Some(digest), errors))?, ReceiptResult::Rejected)
            }
        };
        tx.put_receipt(&ReceiptRecord {
            for_message: id,
            direction: Direction::Out,
            result: rr,
            jws: sealed.jws.clone(),
            received_at: at,
        })
        .await?;
        Ok((Answer::Receipt { jws: sealed.jws, result: rr }, true))
    }

    /// Apply a stored, in-order case message (state `Applied` so far) to `existing`, the case as locked in `tx`.
    /// On a refusal the message's state becomes `Refused`, the case timeline records the conflict, and the refusal
    /// says which state stands here.
    async fn apply_in_order(
        &self,
        tx: &mut S::Tx,
        m: &Message,
        from: &OrgKey,
        existing: Option<CaseRecord>,
    ) -> Result<Result<(), Refusal>, EngineError> {
        let id = m.header.message_id;
        // A case in a chain (escalated, or an escalation) may move its relatives: keep how it was.
        let before = existing.as_ref().filter(|r| !r.case.related_cases.is_empty()).map(|r| r.case.clone());
        let result = self.apply_one(tx, m, from, existing).await?;
        let Err(r) = result else {
            if let Some(case_id) = m.header.case_id {
                self.reroute_if_rejected(tx, case_id, from, &m.body).await?;
                if let Some(before) = before
                    && let Some(after) = tx.get_case(case_id).await?
                {
                    self.propagate_to_parent(tx, &before, &after.case).await?;
                    self.close_children(tx, &before, &after.case).await?;
                }
            }
            return Ok(Ok(()));
        };
        tx.set_inbound_state(id, MessageState::Refused).await?;
        let Some(case_id) = m.header.case_id else { return Ok(Err(r)) };
        let Some(rec) = tx.get_case(case_id).await? else { return Ok(Err(r)) };
        // The refusal tells the author which state stands: its change lost.
        let here = format!("the case is `{}` at revision {} at {}", rec.case.status, rec.case.revision, self.org());
        let r = Refusal { code: r.code, message: format!("{}; {here}", r.message) };
        let detail = format!(
            "{from}'s {} #{} refused: [{}] {}",
            m.header.message_type,
            m.header.sequence.unwrap_or(0),
            r.code,
            r.message
        );
        tx.add_event(&event(case_id, EventKind::Conflict, Some(id), detail)).await?;
        Ok(Err(r))
    }

    /// Apply one in-order case message to the case. On the assignee side (which orders a case's changes) the
    /// message applies on top of our copy; on the originator side too if the partner had seen all our messages
    /// when it made it (its `acknowledgedSequence`), otherwise the case is replayed in the one order of its
    /// changes. `Ok(Err(_))` is a refusal (recorded by the caller).
    async fn apply_one(
        &self,
        tx: &mut S::Tx,
        m: &Message,
        from: &OrgKey,
        existing: Option<CaseRecord>,
    ) -> Result<Result<(), Refusal>, EngineError> {
        let me = &self.inner.me.org;
        let Some(case_id) = m.header.case_id else {
            return Ok(Err(refusal(ErrorCode::SchemaViolation, "case id required")));
        };
        let at = m.header.created_at;
        match (&m.body, existing) {
            (Body::Forward(f), None) => match lifecycle::case_from_forward(f, from, me) {
                Ok(case) => {
                    let owner = self.owner_for_incoming(&case);
                    let rec = CaseRecord {
                        case,
                        partner: from.clone(),
                        our_role: OurRole::Assignee,
                        updated_at: now(),
                        owner: owner.as_ref().map(|(o, _)| o.clone()),
                    };
                    tx.put_case(&rec, None).await?;
                    if let Some((o, why)) = owner {
                        tx.add_event(&event(case_id, EventKind::OwnerChanged, None, format!("owner: {o} ({why})")))
                            .await?;
                    }
                    Ok(Ok(()))
                }
                Err(r) => Ok(Err(r)),
            },
            (Body::Forward(_), Some(_)) => {
                Ok(Err(refusal(ErrorCode::InconsistentCase, format!("case {case_id} exists already here"))))
            }
            (_, None) => Ok(Err(refusal(ErrorCode::UnknownCase, format!("case {case_id} is not known here")))),
            (_, Some(rec)) if &rec.partner != from => Ok(Err(refusal(
                ErrorCode::NotPermitted,
                format!("case {case_id} is exchanged with {}, not with {from}", rec.partner),
            ))),
            (body, Some(rec)) => {
                let in_place = rec.our_role != OurRole::Originator || {
                    let acknowledged = m.header.acknowledged_sequence.unwrap_or(0);
                    acknowledged >= tx.last_out_sequence(case_id, from).await?
                };
                if !in_place {
                    return self.recompute(tx, &rec, Some(m.header.message_id)).await;
                }
                match lifecycle::apply(&rec.case, from, me, body, at) {
                    Ok(new) => {
                        let updated = CaseRecord { case: new.clone(), updated_at: now(), ..rec.clone() };
                        tx.put_case(&updated, Some(rec.case.revision)).await?;
                        if let Some(ev) = status_event(case_id, &rec.case, &new, Some(m.header.message_id)) {
                            tx.add_event(&ev).await?;
                        }
                        Ok(Ok(()))
                    }
                    Err(r) => Ok(Err(r)),
                }
            }
        }
    }

    /// Apply held messages that are now next in line, in sequence order.
    async fn drain_held(&self, tx: &mut S::Tx, case_id: sdx_model::CaseId, peer: &OrgKey) -> Result<(), EngineError> {
        loop {
            let last = tx.last_in_sequence(case_id, peer).await?;
            let held = tx.held_messages(case_id, peer).await?;
            let Some(next) = held.into_iter().find(|h| h.sequence == Some(last + 1)) else { return Ok(()) };
            // The signature was verified when it arrived; decode the stored payload again.
            let m = decode_stored(&next)?;
            tx.set_inbound_state(next.message_id, MessageState::Applied).await?;
            // It was answered positively when it was held; a refusal now is recorded here (state, timeline) but
            // not reported to its sender (see docs/protocol.md, "Known limits").
            // The case as the message before it left it.
            let existing = tx.get_case(case_id).await?;
            let _refused = self.apply_in_order(tx, &m, peer, existing).await?;
            tx.set_last_in_sequence(case_id, peer, last + 1).await?;
        }
    }

    /// A negative receipt for a message that is not kept (no digest; nothing about it is stored).
    fn negative(&self, m: &Message, digest: Option<Sha256Hex>, r: Refusal) -> Result<Answer, EngineError> {
        let me = &self.inner.me;
        let receipt = me.receipt(
            m.header.message_id,
            &m.header.author.key,
            m.header.case_id,
            digest,
            protocol::receipt_errors(&r),
        );
        let sealed = me.seal(&receipt)?;
        Ok(Answer::Receipt { jws: sealed.jws, result: ReceiptResult::Rejected })
    }

    /// A message that could not be opened: a negative receipt if it names a message id, else a problem.
    fn refuse_unopened(&self, wire: &[u8], tls_peer: &OrgKey, r: Refusal) -> Result<Answer, EngineError> {
        let claimed = std::str::from_utf8(wire)
            .ok()
            .and_then(|t| jws::decode_unverified(t.trim()).ok())
            .and_then(|(_, payload)| serde_json::from_slice::<serde_json::Value>(&payload).ok())
            .and_then(|v| v.pointer("/header/messageId").and_then(|x| x.as_str()).map(str::to_string))
            .and_then(|s| MessageId::parse(&s).ok());
        match claimed {
            Some(id) => {
                let me = &self.inner.me;
                let receipt = me.receipt(id, tls_peer, None, None, protocol::receipt_errors(&r));
                let sealed = me.seal(&receipt)?;
                Ok(Answer::Receipt { jws: sealed.jws, result: ReceiptResult::Rejected })
            }
            None => Ok(Answer::Problem { code: r.code, detail: r.message }),
        }
    }
}

/// A stored message, decoded again (its signature was verified when it was received or made).
pub(super) fn decode_stored(rec: &MessageRecord) -> Result<Message, EngineError> {
    let corrupt = |what: &str| {
        EngineError::Store(sdx_store::Error::Corrupt(format!("stored message {}: {what}", rec.message_id)))
    };
    let (_, payload) = jws::decode_unverified(&rec.jws).map_err(|_| corrupt("not a JWS"))?;
    sdx_codec::json::decode(&payload).map_err(|_| corrupt("not an SDX message"))
}
