//! The node's engine: every local change and every received message goes through here, each in one store
//! transaction, so that the case, the outbox, the inbox and the receipts never disagree.
//!
//! - Local changes ([`Engine::forward`], [`Engine::change`]): apply to our copy with the lifecycle rules, then —
//!   in the same transaction — take the next sequence number, seal the message and put it into the outbox.
//! - Received messages ([`Engine::receive`]): open (verify), deduplicate by message id, order by sequence
//!   (hold what comes early), apply, store the signed receipt, commit — and only then answer with it.
//! - Delivery ([`Engine::deliver_due`], [`Engine::deliver`]): claim due outbox entries — a case's next message
//!   only once the one before is delivered — send those for the same peer together as a batch through a
//!   [`Transport`], store every verified receipt in one transaction; retry with exponential backoff and jitter;
//!   dead-letter after the configured time. [`Engine::receive_batch`] is the receiving side of a batch: each
//!   message verified on its own, all stored in one transaction, each answered with its own signed receipt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sdx_crypto::{PublicKey, jws};
use sdx_model::lifecycle::{self, Refusal};
use sdx_model::{Body, Case, CaseId, ErrorCode, Message, MessageId, OrgKey, ReceiptResult, Timestamp};
use sdx_store::{
    CaseRecord, Delivery, DeliveryState, Direction, EventKind, MessageRecord, MessageState, OurRole, ReceiptRecord,
    Store, StoreTx, TimelineEvent,
};

use crate::protocol::{self, Identity, Sealed};
use crate::settings::DeliverySettings;

/// A partner node as the engine knows it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Organisation key.
    pub org: OrgKey,
    /// Base URL of its peer endpoint.
    pub url: String,
    /// Its public signing key.
    pub key: PublicKey,
}

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The change is not allowed (lifecycle, rules, permissions): a typed, expected answer.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No such case here.
    #[error("case {0} is not known here")]
    NotFound(CaseId),
    /// No such peer configured.
    #[error("no peer {0} is configured")]
    UnknownPeer(OrgKey),
    /// The case changed meanwhile (optimistic concurrency); retry.
    #[error("the case changed meanwhile; retry")]
    Conflict,
    /// Storage failed.
    #[error("storage: {0}")]
    Store(sdx_store::Error),
    /// Signing failed.
    #[error("signing: {0}")]
    Crypto(#[from] sdx_crypto::Error),
}

impl From<sdx_store::Error> for EngineError {
    fn from(e: sdx_store::Error) -> Self {
        match e {
            sdx_store::Error::Conflict => EngineError::Conflict,
            other => EngineError::Store(other),
        }
    }
}

/// A message that was committed to the outbox.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id.
    pub message_id: MessageId,
    /// The case as it is now at this node.
    pub case: Case,
}

/// The answer to a peer's POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A signed receipt (positive or negative), to be returned with HTTP 200.
    Receipt {
        /// The receipt JWS.
        jws: String,
        /// Accepted or rejected.
        result: ReceiptResult,
    },
    /// No receipt can be made (unknown peer, not a JWS): the HTTP layer answers with an RFC 9457 problem whose
    /// status follows from the code.
    Problem {
        /// Stable error code.
        code: ErrorCode,
        /// Explanation.
        detail: String,
    },
}

/// Sending sealed messages to a peer and getting the answers back.
pub trait Transport: Send + Sync {
    /// POST the JWS to the peer; `Ok` carries the response body of a 200 answer (the receipt).
    fn post(&self, peer: &Peer, jws: &str) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send;

    /// POST several JWS to the peer in one request; `Ok` carries one answer per message, in order: the receipt,
    /// or why there is none. The default sends them one by one.
    fn post_batch(
        &self,
        peer: &Peer,
        jws: &[&str],
    ) -> impl std::future::Future<Output = Result<Vec<Result<Vec<u8>, String>>, String>> + Send {
        async move {
            let mut out = Vec::with_capacity(jws.len());
            for j in jws {
                out.push(self.post(peer, j).await);
            }
            Ok(out)
        }
    }
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
enum Outcome {
    /// A verified receipt for the message (positive or negative).
    Receipt {
        /// The receipt JWS as received.
        jws: String,
        /// The receipt's own message id.
        receipt_id: MessageId,
        /// The receipt.
        receipt: sdx_model::Receipt,
    },
    /// No usable answer; retried unless `permanent`.
    Failed {
        /// Why.
        error: String,
        /// Dead-letter at once.
        permanent: bool,
    },
}

struct Inner<S> {
    me: Identity,
    store: S,
    peers: HashMap<OrgKey, Peer>,
    delivery: DeliverySettings,
    /// Signalled after a commit that put something into the outbox.
    wake: Arc<tokio::sync::Notify>,
    /// Callers waiting for a message's positive receipt ([`Engine::wait_delivered`]).
    waiters: std::sync::Mutex<HashMap<MessageId, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

/// The engine of one node. Cheap to clone.
pub struct Engine<S: Store> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Engine { inner: Arc::clone(&self.inner) }
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_offset_date_time(t.as_offset_date_time() + d)
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

fn set_revision(body: &mut Body, rev: u32) {
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

fn status_event(case_id: CaseId, old: &Case, new: &Case, message_id: MessageId) -> Option<TimelineEvent> {
    (old.status != new.status).then(|| TimelineEvent {
        case_id,
        at: now(),
        kind: EventKind::StatusChanged,
        message_id: Some(message_id),
        detail: format!("{} → {}", old.status, new.status),
    })
}

impl<S: Store> Engine<S> {
    /// An engine for this node.
    pub fn new(me: Identity, store: S, peers: Vec<Peer>, delivery: DeliverySettings) -> Self {
        let peers = peers.into_iter().map(|p| (p.org.clone(), p)).collect();
        let wake = Arc::new(tokio::sync::Notify::new());
        let waiters = std::sync::Mutex::new(HashMap::new());
        Engine { inner: Arc::new(Inner { me, store, peers, delivery, wake, waiters }) }
    }

    /// Wait until the signed positive receipt for `id` (a message this node sent) is stored, or `timeout`
    /// passes. Returns whether it was delivered.
    pub async fn wait_delivered(&self, id: MessageId, timeout: Duration) -> Result<bool, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut w) = self.inner.waiters.lock() {
            w.entry(id).or_default().push(tx);
        }
        // It may have been delivered before we registered.
        if let Some(m) = self.inner.store.get_message(id).await?
            && m.state == MessageState::Delivered
        {
            self.release_waiters(id);
            return Ok(true);
        }
        Ok(tokio::time::timeout(timeout, rx).await.is_ok_and(|r| r.is_ok()))
    }

    fn release_waiters(&self, id: MessageId) {
        let senders = self.inner.waiters.lock().ok().and_then(|mut w| w.remove(&id)).unwrap_or_default();
        for s in senders {
            let _ = s.send(());
        }
    }

    /// Signalled whenever a commit put a message into the outbox (the delivery worker waits on it).
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inner.wake)
    }

    /// This node's organisation.
    pub fn org(&self) -> &OrgKey {
        &self.inner.me.org
    }

    /// Whether `org` is one of the configured peers.
    pub fn is_peer(&self, org: &OrgKey) -> bool {
        self.inner.peers.contains_key(org)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Create a case here and forward it to its assignee.
    pub async fn forward(&self, case: Case, note: Option<String>) -> Result<Sent, EngineError> {
        let me = &self.inner.me;
        let to = case.assignee.clone();
        if !self.inner.peers.contains_key(&to) {
            return Err(EngineError::UnknownPeer(to));
        }
        if case.originator != me.org {
            return Err(refusal(ErrorCode::NotPermitted, "a node forwards the cases it originates").into());
        }
        if let Some(i) = sdx_model::rules::check_case_issues(&case).into_iter().next() {
            return Err(refusal(i.code, format!("{} (at {})", i.message, i.pointer)).into());
        }
        // A new case's first message has sequence number 1: seal it before taking the writer.
        let body = Body::Forward(sdx_model::Forward { case: case.clone(), note });
        let at = now();
        let presealed = self.seal_out(&to, case.case_id, body.clone(), 1, at)?;
        let mut tx = self.inner.store.begin().await?;
        if tx.get_case(case.case_id).await?.is_some() {
            return Err(refusal(ErrorCode::InconsistentCase, format!("case {} exists already", case.case_id)).into());
        }
        let rec = CaseRecord { case: case.clone(), partner: to.clone(), our_role: OurRole::Originator, updated_at: at };
        tx.put_case(&rec, None).await?;
        let message_id = self.enqueue(&mut tx, &to, case.case_id, body, at, Some(presealed)).await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(Sent { message_id, case })
    }

    /// Apply a local change (update, resolve, hand back, close, reopen, reject) and send it to the partner.
    pub async fn change(&self, case_id: CaseId, mut body: Body) -> Result<Sent, EngineError> {
        let me = &self.inner.me;
        let mut tx = self.inner.store.begin().await?;
        let rec = tx.get_case(case_id).await?.ok_or(EngineError::NotFound(case_id))?;
        let at = now();
        let new = lifecycle::apply(&rec.case, &me.org, &rec.partner, &body, at)?;
        set_revision(&mut body, new.revision);
        let updated = CaseRecord { case: new.clone(), updated_at: at, ..rec.clone() };
        tx.put_case(&updated, Some(rec.case.revision)).await?;
        // The message carries the same time as the change, so the receiver records the same history.
        let message_id = self.enqueue(&mut tx, &rec.partner, case_id, body, at, None).await?;
        if let Some(ev) = status_event(case_id, &rec.case, &new, message_id) {
            tx.add_event(&ev).await?;
        }
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(Sent { message_id, case: new })
    }

    /// Build, check and seal the message with sequence number `seq` (CPU work: done before the transaction
    /// where the number is known in advance).
    fn seal_out(
        &self,
        to: &OrgKey,
        case_id: CaseId,
        body: Body,
        seq: u64,
        created_at: Timestamp,
    ) -> Result<(Message, Sealed), EngineError> {
        let me = &self.inner.me;
        let mut header = me.header(body.message_type(), to, Some(case_id), Some(seq), None);
        header.created_at = created_at;
        let m = Message { header, body };
        if let Some(d) = sdx_codec::validate::check(&m).into_iter().next() {
            return Err(refusal(d.code, d.to_string()).into());
        }
        let sealed = me.seal(&m)?;
        Ok((m, sealed))
    }

    /// Seal a message to `to` about `case_id` with the next sequence number and put it into the outbox.
    /// `presealed` is the message already sealed with the number expected (used if that is the number).
    async fn enqueue(
        &self,
        tx: &mut S::Tx,
        to: &OrgKey,
        case_id: CaseId,
        body: Body,
        created_at: Timestamp,
        presealed: Option<(Message, Sealed)>,
    ) -> Result<MessageId, EngineError> {
        let seq = tx.next_out_sequence(case_id, to).await?;
        let (m, Sealed { jws, digest }) = match presealed {
            Some((m, sealed)) if m.header.sequence == Some(seq) => (m, sealed),
            _ => self.seal_out(to, case_id, body, seq, created_at)?,
        };
        let at = now();
        let id = m.header.message_id;
        tx.insert_message(&MessageRecord {
            message_id: id,
            case_id: Some(case_id),
            direction: Direction::Out,
            peer: to.clone(),
            message_type: m.header.message_type,
            sequence: Some(seq),
            created_at: m.header.created_at,
            stored_at: at,
            jws,
            digest,
            state: MessageState::Pending,
        })
        .await?;
        tx.enqueue(&Delivery {
            message_id: id,
            peer: to.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: at,
            next_attempt_at: at,
            last_error: None,
            delivered_at: None,
        })
        .await?;
        tx.add_event(&TimelineEvent {
            case_id,
            at,
            kind: EventKind::MessageSent,
            message_id: Some(id),
            detail: format!("{} #{seq} to {to}", m.header.message_type),
        })
        .await?;
        Ok(id)
    }

    /// Handle a message that a peer POSTed over mutual TLS.
    pub async fn receive(&self, wire: &[u8], tls_peer: &OrgKey) -> Result<Answer, EngineError> {
        let opened = match self.open_received(wire, tls_peer)? {
            Ok(o) => o,
            Err(answer) => return Ok(answer),
        };
        let receipt = self.accepted_receipt(&opened, tls_peer)?;
        let mut tx = self.inner.store.begin().await?;
        let (answer, stored) = self.apply_received(&mut tx, wire, opened, tls_peer, Some(receipt)).await?;
        // An answer that stored nothing (a negative receipt, or the stored receipt of a duplicate) leaves the
        // store as it was: the transaction is rolled back.
        if stored {
            tx.commit().await?;
        }
        Ok(answer)
    }

    /// Handle several messages that a peer POSTed in one request: each is verified on its own, all are stored
    /// in one transaction (one durable commit), and each gets its own answer, in order. Nothing is answered
    /// before the commit; if it fails, no message counts as received.
    ///
    /// A message refused in a batch may leave the empty sequence counter (0) of its case and peer behind; it
    /// is indistinguishable from no counter.
    pub async fn receive_batch(&self, wires: &[&[u8]], tls_peer: &OrgKey) -> Result<Vec<Answer>, EngineError> {
        let mut answers = Vec::with_capacity(wires.len());
        let mut opened = Vec::with_capacity(wires.len());
        for wire in wires {
            match self.open_received(wire, tls_peer)? {
                Ok(o) => {
                    opened.push(Some(o));
                    answers.push(None);
                }
                Err(a) => {
                    opened.push(None);
                    answers.push(Some(a));
                }
            }
        }
        if opened.iter().any(Option::is_some) {
            // Apply in (case, sequence) order: every transaction takes the row locks of its cases in the same
            // order (no deadlock between concurrent batches on PostgreSQL), and a case's messages in sequence.
            let mut order: Vec<(usize, protocol::Opened, Sealed)> = Vec::with_capacity(opened.len());
            for (i, o) in opened.into_iter().enumerate() {
                if let Some(o) = o {
                    let receipt = self.accepted_receipt(&o, tls_peer)?;
                    order.push((i, o, receipt));
                }
            }
            order.sort_by_key(|(_, o, _)| (o.message.header.case_id, o.message.header.sequence));
            let mut tx = self.inner.store.begin().await?;
            let mut stored_any = false;
            for (i, o, receipt) in order {
                let (answer, stored) = self.apply_received(&mut tx, wires[i], o, tls_peer, Some(receipt)).await?;
                stored_any |= stored;
                answers[i] = Some(answer);
            }
            if stored_any {
                tx.commit().await?;
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// Verify a received message: `Ok(Err(answer))` if it cannot be opened (the answer says why).
    fn open_received(&self, wire: &[u8], tls_peer: &OrgKey) -> Result<Result<protocol::Opened, Answer>, EngineError> {
        let me = &self.inner.me;
        let Some(peer) = self.inner.peers.get(tls_peer) else {
            return Ok(Err(Answer::Problem {
                code: ErrorCode::UnknownSender,
                detail: format!("{tls_peer} is not a configured peer of {}", me.org),
            }));
        };
        match protocol::open(wire, &peer.key, tls_peer, &me.org) {
            Ok(o) => Ok(Ok(o)),
            Err(r) => Ok(Err(self.refuse_unopened(wire, tls_peer, r)?)),
        }
    }

    /// The positive receipt for an opened message, signed ahead (CPU work kept out of the transaction; used if
    /// the message is accepted).
    fn accepted_receipt(&self, opened: &protocol::Opened, tls_peer: &OrgKey) -> Result<Sealed, EngineError> {
        let me = &self.inner.me;
        let h = &opened.message.header;
        Ok(me.seal(&me.receipt(h.message_id, tls_peer, h.case_id, Some(opened.digest.clone()), vec![]))?)
    }

    /// Deduplicate, order and apply an opened message in `tx`, and store it with its signed receipt (the
    /// `accepted_receipt` signed ahead if it is accepted). Returns the answer and whether anything was stored (if
    /// not, the caller need not commit).
    async fn apply_received(
        &self,
        tx: &mut S::Tx,
        wire: &[u8],
        opened: protocol::Opened,
        tls_peer: &OrgKey,
        accepted_receipt: Option<Sealed>,
    ) -> Result<(Answer, bool), EngineError> {
        let me = &self.inner.me;
        let m = opened.message;
        let id = m.header.message_id;
        // For a case message, lock (case, peer) first: concurrent receipts for one case run one after the other,
        // so the dedup check and the sequence check below see what the other committed.
        let last_in = match m.header.case_id {
            Some(case_id) if !matches!(m.body, Body::Receipt(_) | Body::ServiceNotice(_)) => {
                Some(tx.last_in_sequence(case_id, tls_peer).await?)
            }
            _ => None,
        };
        // Deduplicate: the same message again gets the same receipt; other content under a known id is a replay.
        if let Some(prev) = tx.get_message(id).await? {
            if prev.digest == opened.digest
                && let Some(r) = tx.get_receipt(id, Direction::Out).await?
            {
                return Ok((Answer::Receipt { jws: r.jws, result: r.result }, false));
            }
            let r = refusal(ErrorCode::Replay, format!("message {id} is known with other content"));
            return Ok((self.negative(&m, None, r)?, false));
        }
        let mut stored_state = MessageState::Applied;
        let mut result: Result<(), Refusal> = Ok(());
        match (&m.body, m.header.case_id, m.header.sequence) {
            (Body::Receipt(_), ..) => {
                let r = refusal(ErrorCode::SchemaViolation, "receipts travel in responses");
                return Ok((self.negative(&m, None, r)?, false));
            }
            (Body::ServiceNotice(_), ..) => {}
            (_, Some(case_id), Some(seq)) => {
                let last = last_in.unwrap_or(0);
                if seq <= last {
                    let r = refusal(ErrorCode::OutOfOrder, format!("sequence {seq} was used already (last {last})"));
                    return Ok((self.negative(&m, Some(opened.digest), r)?, false));
                }
                if seq > last + 1 {
                    stored_state = MessageState::Held;
                } else {
                    result = self.apply_one(tx, &m, tls_peer).await?;
                    if result.is_err() {
                        stored_state = MessageState::Refused;
                    }
                    tx.set_last_in_sequence(case_id, tls_peer, seq).await?;
                }
            }
            _ => {
                let r = refusal(ErrorCode::SchemaViolation, "case id and sequence required");
                return Ok((self.negative(&m, None, r)?, false));
            }
        }
        let at = now();
        tx.insert_message(&MessageRecord {
            message_id: id,
            case_id: m.header.case_id,
            direction: Direction::In,
            peer: tls_peer.clone(),
            message_type: m.header.message_type,
            sequence: m.header.sequence,
            created_at: m.header.created_at,
            stored_at: at,
            jws: String::from_utf8_lossy(wire).trim().to_string(),
            digest: opened.digest.clone(),
            state: stored_state,
        })
        .await?;
        if let Some(case_id) = m.header.case_id {
            tx.add_event(&TimelineEvent {
                case_id,
                at,
                kind: EventKind::MessageReceived,
                message_id: Some(id),
                detail: format!(
                    "{} #{} from {tls_peer} ({})",
                    m.header.message_type,
                    m.header.sequence.unwrap_or(0),
                    stored_state.as_str()
                ),
            })
            .await?;
            if stored_state == MessageState::Applied {
                self.drain_held(tx, case_id, tls_peer).await?;
            }
        }
        let sealed = match (&result, accepted_receipt) {
            (Ok(()), Some(sealed)) => sealed,
            (Ok(()), None) => me.seal(&me.receipt(id, tls_peer, m.header.case_id, Some(opened.digest), vec![]))?,
            (Err(r), _) => {
                let errors = protocol::receipt_errors(r);
                me.seal(&me.receipt(id, tls_peer, m.header.case_id, Some(opened.digest), errors))?
            }
        };
        let rr = if result.is_ok() { ReceiptResult::Accepted } else { ReceiptResult::Rejected };
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

    /// Apply one in-order case message to the store. `Ok(Err(_))` is a refusal (stored as such by the caller).
    async fn apply_one(&self, tx: &mut S::Tx, m: &Message, from: &OrgKey) -> Result<Result<(), Refusal>, EngineError> {
        let me = &self.inner.me.org;
        let Some(case_id) = m.header.case_id else {
            return Ok(Err(refusal(ErrorCode::SchemaViolation, "case id required")));
        };
        let existing = tx.get_case(case_id).await?;
        let at = m.header.created_at;
        match (&m.body, existing) {
            (Body::Forward(f), None) => match lifecycle::case_from_forward(f, from, me) {
                Ok(case) => {
                    let rec =
                        CaseRecord { case, partner: from.clone(), our_role: OurRole::Assignee, updated_at: now() };
                    tx.put_case(&rec, None).await?;
                    Ok(Ok(()))
                }
                Err(r) => Ok(Err(r)),
            },
            (Body::Forward(_), Some(_)) => {
                Ok(Err(refusal(ErrorCode::InconsistentCase, format!("case {case_id} exists already here"))))
            }
            (_, None) => Ok(Err(refusal(ErrorCode::UnknownCase, format!("case {case_id} is not known here")))),
            (body, Some(rec)) => match lifecycle::apply(&rec.case, from, me, body, at) {
                Ok(new) => {
                    let updated = CaseRecord { case: new.clone(), updated_at: now(), ..rec.clone() };
                    tx.put_case(&updated, Some(rec.case.revision)).await?;
                    if let Some(ev) = status_event(case_id, &rec.case, &new, m.header.message_id) {
                        tx.add_event(&ev).await?;
                    }
                    Ok(Ok(()))
                }
                Err(r) => Ok(Err(r)),
            },
        }
    }

    /// Apply held messages that are now next in line, in sequence order.
    async fn drain_held(&self, tx: &mut S::Tx, case_id: CaseId, peer: &OrgKey) -> Result<(), EngineError> {
        loop {
            let last = tx.last_in_sequence(case_id, peer).await?;
            let held = tx.held_messages(case_id, peer).await?;
            let Some(next) = held.into_iter().find(|h| h.sequence == Some(last + 1)) else { return Ok(()) };
            // The signature was verified when it arrived; decode the stored payload again.
            let (_, payload) = jws::decode_unverified(&next.jws)?;
            let m = sdx_codec::json::decode(&payload).map_err(|_| {
                EngineError::Store(sdx_store::Error::Corrupt(format!("held message {}", next.message_id)))
            })?;
            let state = match self.apply_one(tx, &m, peer).await? {
                Ok(()) => MessageState::Applied,
                Err(_) => MessageState::Refused,
            };
            tx.set_message_state(next.message_id, state).await?;
            tx.set_last_in_sequence(case_id, peer, last + 1).await?;
        }
    }

    /// A negative receipt that is not stored (nothing about the message is kept).
    fn negative(&self, m: &Message, digest: Option<sdx_model::Sha256Hex>, r: Refusal) -> Result<Answer, EngineError> {
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

    /// Release the delivery leases a previous (killed) process of this node left behind, so that their
    /// deliveries go out now instead of when the leases run out. Called when the node starts.
    pub async fn release_leases(&self) -> Result<u64, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let n = tx.release_leases().await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Claim up to `limit` due deliveries (leased for a minute, so no other worker or process takes them).
    pub async fn claim_due(&self, limit: u32) -> Result<Vec<Delivery>, EngineError> {
        let at = now();
        let mut tx = self.inner.store.begin().await?;
        let due = tx.claim_due(at, later(at, Duration::from_secs(60)), limit).await?;
        tx.commit().await?;
        Ok(due)
    }

    /// Claim due deliveries and send them, in batches per peer (at most `batch` messages per request, see
    /// [`DeliverySettings::batch`]), all batches at once; returns how many were delivered.
    ///
    /// A case's next message becomes due only when the one before is delivered, so this claims again after each
    /// round until nothing is due or `limit` deliveries were attempted.
    pub async fn deliver_due<T: Transport>(&self, transport: &T, limit: u32) -> Result<usize, EngineError> {
        let mut delivered = 0;
        let mut budget = limit;
        while budget > 0 {
            let due = self.claim_due(budget).await?;
            if due.is_empty() {
                break;
            }
            budget = budget.saturating_sub(u32::try_from(due.len()).unwrap_or(u32::MAX));
            let batches = self.batches(due);
            let results = futures_util::future::join_all(batches.into_iter().map(|b| self.deliver(transport, b))).await;
            for r in results {
                delivered += r?;
            }
        }
        Ok(delivered)
    }

    /// Split claimed deliveries into batches: per peer, in claim order, at most [`DeliverySettings::batch`]
    /// messages each.
    pub fn batches(&self, due: Vec<Delivery>) -> Vec<Vec<Delivery>> {
        let size = self.inner.delivery.batch.max(1);
        let mut by_peer: Vec<(OrgKey, Vec<Vec<Delivery>>)> = Vec::new();
        for d in due {
            let i = match by_peer.iter().position(|(p, _)| *p == d.peer) {
                Some(i) => i,
                None => {
                    by_peer.push((d.peer.clone(), vec![Vec::new()]));
                    by_peer.len() - 1
                }
            };
            let chunks = &mut by_peer[i].1;
            if chunks.last().is_none_or(|c| c.len() >= size) {
                chunks.push(Vec::new());
            }
            if let Some(last) = chunks.last_mut() {
                last.push(d);
            }
        }
        by_peer.into_iter().flat_map(|(_, chunks)| chunks).filter(|c| !c.is_empty()).collect()
    }

    /// Send one delivery and record the outcome. Returns whether it is delivered now.
    pub async fn deliver_one<T: Transport>(&self, transport: &T, d: Delivery) -> Result<bool, EngineError> {
        Ok(self.deliver(transport, vec![d]).await? == 1)
    }

    /// Send deliveries to one peer — one request for one message, a batch request for several, single
    /// requests for messages too large for a batch — and record every outcome in one transaction. Returns how
    /// many are delivered now. (Deliveries for several peers are split into one batch per peer first.)
    pub async fn deliver<T: Transport>(&self, transport: &T, ds: Vec<Delivery>) -> Result<usize, EngineError> {
        if ds.is_empty() {
            return Ok(0);
        }
        if ds.iter().any(|d| d.peer != ds[0].peer) {
            // Several peers: one batch each (as `batches` splits them).
            let mut delivered = 0;
            for b in self.batches(ds) {
                delivered += Box::pin(self.deliver(transport, b)).await?;
            }
            return Ok(delivered);
        }
        let mut msgs = Vec::with_capacity(ds.len());
        for d in &ds {
            let Some(msg) = self.inner.store.get_message(d.message_id).await? else {
                return Err(EngineError::Store(sdx_store::Error::Corrupt(format!(
                    "delivery without message {}",
                    d.message_id
                ))));
            };
            msgs.push(msg);
        }
        let outcomes: Vec<Outcome> = match ds.first().and_then(|d| self.inner.peers.get(&d.peer)) {
            None => {
                let e = Outcome::Failed { error: "the peer is no longer configured".into(), permanent: true };
                ds.iter().map(|_| e.clone()).collect()
            }
            Some(peer) => {
                let small: Vec<usize> =
                    (0..msgs.len()).filter(|&i| msgs[i].jws.len() <= protocol::MAX_BATCH_ITEM_BYTES).collect();
                let mut answers: Vec<Option<Result<Vec<u8>, String>>> = msgs.iter().map(|_| None).collect();
                if small.len() > 1 {
                    let jws: Vec<&str> = small.iter().map(|&i| msgs[i].jws.as_str()).collect();
                    match transport.post_batch(peer, &jws).await {
                        Ok(items) if items.len() == small.len() => {
                            for (&i, a) in small.iter().zip(items) {
                                answers[i] = Some(a);
                            }
                        }
                        Ok(items) => {
                            let e = format!("the batch answer has {} items for {} messages", items.len(), jws.len());
                            for &i in &small {
                                answers[i] = Some(Err(e.clone()));
                            }
                        }
                        Err(e) => {
                            for &i in &small {
                                answers[i] = Some(Err(e.clone()));
                            }
                        }
                    }
                }
                for (i, a) in answers.iter_mut().enumerate() {
                    if a.is_none() {
                        *a = Some(transport.post(peer, &msgs[i].jws).await);
                    }
                }
                msgs.iter()
                    .zip(answers)
                    .map(|(msg, a)| self.judge(peer, msg, a.unwrap_or_else(|| Err("not sent".into()))))
                    .collect()
            }
        };
        let mut tx = self.inner.store.begin().await?;
        let mut accepted = Vec::new();
        for ((d, msg), outcome) in ds.iter().zip(&msgs).zip(&outcomes) {
            if self.record(&mut tx, d, msg, outcome).await? {
                accepted.push(msg.message_id);
            }
        }
        tx.commit().await?;
        for id in &accepted {
            self.release_waiters(*id);
        }
        Ok(accepted.len())
    }

    /// What the answer to a sent message means.
    fn judge(&self, peer: &Peer, msg: &MessageRecord, answer: Result<Vec<u8>, String>) -> Outcome {
        let body = match answer {
            Ok(b) => b,
            Err(error) => return Outcome::Failed { error, permanent: false },
        };
        match protocol::open_receipt(&body, &peer.key, &peer.org, &self.inner.me.org, msg.message_id, &msg.digest) {
            Ok((receipt_msg, receipt)) => Outcome::Receipt {
                jws: String::from_utf8_lossy(&body).trim().to_string(),
                receipt_id: receipt_msg.header.message_id,
                receipt,
            },
            Err(r) => Outcome::Failed { error: format!("unusable receipt: {r}"), permanent: false },
        }
    }

    /// Record the outcome of one delivery attempt in `tx`. Returns whether the message is delivered now.
    async fn record(
        &self,
        tx: &mut S::Tx,
        d: &Delivery,
        msg: &MessageRecord,
        outcome: &Outcome,
    ) -> Result<bool, EngineError> {
        let at = now();
        let (jws, receipt_id, receipt) = match outcome {
            Outcome::Receipt { jws, receipt_id, receipt } => (jws, receipt_id, receipt),
            Outcome::Failed { error, permanent } => {
                self.record_failure(tx, d, msg, error, *permanent, at).await?;
                return Ok(false);
            }
        };
        let rec = ReceiptRecord {
            for_message: msg.message_id,
            direction: Direction::In,
            result: receipt.result,
            jws: jws.clone(),
            received_at: at,
        };
        if receipt.result == ReceiptResult::Accepted {
            tx.mark_delivered(msg.message_id, &rec).await?;
        } else {
            // A negative receipt is final: the receiver refused this message.
            let codes: Vec<_> = receipt.errors.iter().map(|e| e.code.to_string()).collect();
            tx.put_receipt(&rec).await?;
            tx.mark_failed(msg.message_id, d.attempts + 1, at, &format!("refused: {}", codes.join(", ")), true).await?;
            tx.set_message_state(msg.message_id, MessageState::Dead).await?;
        }
        if let Some(case_id) = msg.case_id {
            tx.add_event(&TimelineEvent {
                case_id,
                at,
                kind: EventKind::ReceiptReceived,
                message_id: Some(msg.message_id),
                detail: format!("{} for {} (receipt {receipt_id})", receipt.result, msg.message_type),
            })
            .await?;
        }
        Ok(receipt.result == ReceiptResult::Accepted)
    }

    /// Record a failed attempt: retry later with exponential backoff and jitter, or dead-letter it.
    async fn record_failure(
        &self,
        tx: &mut S::Tx,
        d: &Delivery,
        msg: &MessageRecord,
        error: &str,
        permanent: bool,
        at: Timestamp,
    ) -> Result<(), EngineError> {
        let attempts = d.attempts + 1;
        let cfg = &self.inner.delivery;
        let age = at.as_offset_date_time() - d.created_at.as_offset_date_time();
        let dead = permanent || age >= time::Duration::seconds(i64::try_from(cfg.dead_after_s).unwrap_or(i64::MAX));
        let base = cfg.backoff(attempts);
        // Full jitter: anywhere between half and the whole delay, so that retries do not march in step.
        let jitter = rand_fraction(d.message_id);
        let wait = base.mul_f64(0.5 + 0.5 * jitter);
        tx.mark_failed(d.message_id, attempts, later(at, wait), error, dead).await?;
        if let Some(case_id) = msg.case_id {
            tx.add_event(&TimelineEvent {
                case_id,
                at,
                kind: if dead { EventKind::DeadLettered } else { EventKind::DeliveryFailed },
                message_id: Some(d.message_id),
                detail: format!("attempt {attempts}: {}", error.chars().take(200).collect::<String>()),
            })
            .await?;
            if dead {
                tx.set_message_state(d.message_id, MessageState::Dead).await?;
            }
        }
        Ok(())
    }

    /// Put a dead letter back into delivery.
    pub async fn retry_dead(&self, id: MessageId) -> Result<bool, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let ok = tx.retry_dead(id, now()).await?;
        if ok {
            tx.set_message_state(id, MessageState::Pending).await?;
        }
        tx.commit().await?;
        Ok(ok)
    }
}

/// A number in [0, 1) that differs per message and per call (cheap jitter without a random-number crate).
fn rand_fraction(id: MessageId) -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let x = (id.uuid().as_u128() as u64) ^ u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 11) as f64 / (1u64 << 53) as f64
}
