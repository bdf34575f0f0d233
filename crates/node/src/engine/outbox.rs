//! Delivery: the one owner of a delivery's state. Due deliveries are claimed (leased for a minute; a case's next
//! message only when the one before it is delivered or rejected, never past a dead letter), sent per peer as
//! batches through a [`Transport`], and every answer is judged and recorded in one transaction:
//!
//! | answer | delivery becomes | the case |
//! |---|---|---|
//! | signed positive receipt | `delivered` | — |
//! | signed negative receipt quoting our digest (the peer judged and refused it) | `rejected` | our change lost: replayed without it, a `conflict` event says why and which state won |
//! | signed negative receipt without digest (the peer kept nothing) | `dead` at once | blocked |
//! | network error, HTTP 5xx/408/429, a problem marked `retryable` | `pending`, next attempt after backoff with full jitter | — |
//! | any other HTTP error, a receipt that does not verify or answers another message, a malformed answer | `dead` at once | blocked |
//! | still failing after `max_attempts` attempts or `dead_after_s` | `dead` | blocked |
//!
//! A blocked case's later messages to that peer wait (the peer does not have the dead letter, so it would hold
//! them for ever) until an operator retries the dead letter ([`Engine::retry_dead`]) or skips it
//! ([`Engine::skip_dead`]: withdrawn from the case, the messages behind it renumbered).

use std::time::Duration;

use sdx_model::{ErrorCode, MessageId, OrgKey, Receipt, ReceiptResult, Timestamp};
use sdx_store::{Delivery, Direction, EventKind, MessageRecord, MessageState, ReceiptRecord};
use sdx_store::{Store, StoreTx};

use super::inbox::decode_stored;
use super::local::Outgoing;
use super::{Engine, EngineError, Peer, Transport, TransportError, event, later, now, refusal};

/// What became of a receipt a hub pushed ([`Engine::receive_relayed_receipt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayedReceipt {
    /// It was the answer the delivery waited for, and is recorded.
    Recorded,
    /// The delivery already has its answer (the receipt came twice, or directly first).
    AlreadyRecorded,
}
use crate::metrics::DeliveryOutcome;
use crate::protocol;

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
        receipt: Receipt,
    },
    /// A hub queued it and will push the reader's receipt (`crate::hub`).
    Queued {
        /// The hub's word on it.
        note: String,
    },
    /// No usable answer; retried unless `permanent`.
    Failed {
        /// Why (names the cause; no personal data).
        error: String,
        /// Dead-letter at once.
        permanent: bool,
    },
}

/// How an answer was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    Delivered,
    Rejected,
    Queued,
    Retry,
    Dead,
}

impl<S: Store> Engine<S> {
    /// Release the delivery leases a previous (killed) process of this node left behind, so that their
    /// deliveries go out now instead of when the leases run out. Called when the node starts.
    pub async fn release_leases(&self) -> Result<u64, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let n = tx.release_leases().await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Claim up to `limit` due deliveries (leased for a minute, so no other worker or process takes them). A
    /// volatile transaction: a lease lost in a crash costs nothing (a node releases all leases when it starts).
    pub async fn claim_due(&self, limit: u32) -> Result<Vec<Delivery>, EngineError> {
        let at = now();
        let mut tx = self.inner.store.begin_volatile().await?;
        let due = tx.claim_due(at, later(at, Duration::from_secs(60)), limit).await?;
        tx.commit().await?;
        Ok(due)
    }

    /// Claim due deliveries and send them, in batches per peer (at most `batch` messages per request, see
    /// [`crate::settings::DeliverySettings::batch`]), all batches at once; returns how many were delivered.
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

    /// Split claimed deliveries into batches: per peer, in claim order, at most
    /// [`crate::settings::DeliverySettings::batch`] messages each.
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
            let mut delivered = 0;
            for b in self.batches(ds) {
                delivered += Box::pin(self.deliver(transport, b)).await?;
            }
            return Ok(delivered);
        }
        let span = tracing::debug_span!("deliver", peer = %ds[0].peer, messages = ds.len());
        let _guard = span.enter();
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
        let outcomes: Vec<Outcome> = match ds.first().and_then(|d| self.peer(&d.peer)) {
            None => {
                let e = Outcome::Failed { error: "the peer is no longer configured".into(), permanent: true };
                ds.iter().map(|_| e.clone()).collect()
            }
            Some(peer) => {
                let peer = &*peer;
                let answers = if peer.via_hub.is_some() {
                    self.post_enveloped(transport, peer, &msgs).await
                } else {
                    let jws: Vec<&str> = msgs.iter().map(|m| m.jws.as_str()).collect();
                    post_all(transport, peer, &jws).await
                };
                // Each receipt is verified on its own: shared between two threads for a batch.
                let answered: Vec<(&MessageRecord, Result<Vec<u8>, TransportError>)> =
                    msgs.iter().zip(answers).collect();
                super::split_work(&answered, |(msg, a)| self.judge(peer, msg, a))
            }
        };
        let mut tx = self.inner.store.begin().await?;
        let mut recorded = Vec::with_capacity(ds.len());
        for ((d, msg), outcome) in ds.iter().zip(&msgs).zip(&outcomes) {
            recorded.push(self.record(&mut tx, d, msg, outcome).await?);
        }
        tx.commit().await?;
        let mut delivered = 0;
        for ((d, msg), r) in ds.iter().zip(&msgs).zip(&recorded) {
            delivered += usize::from(self.recorded(d, msg, *r));
        }
        Ok(delivered)
    }

    /// After the commit of a recorded outcome: count it, tell those waiting for the message, and wake the
    /// outbox when the case's next message may have become due. Returns whether it is delivered.
    pub(super) fn recorded(&self, d: &Delivery, msg: &MessageRecord, r: Recorded) -> bool {
        let m = &self.inner.metrics;
        match r {
            Recorded::Delivered => {
                m.delivery_attempt(&d.peer, DeliveryOutcome::Delivered);
                m.delivered(&d.peer, d.created_at);
                self.release_waiters(msg.message_id, true);
                return true;
            }
            Recorded::Rejected => {
                m.delivery_attempt(&d.peer, DeliveryOutcome::Rejected);
                self.release_waiters(msg.message_id, false);
                // A rejected change may have freed the next message of its case.
                self.inner.wake.notify_one();
            }
            Recorded::Dead => {
                m.delivery_attempt(&d.peer, DeliveryOutcome::Dead);
                m.dead_letter(&d.peer);
                self.release_waiters(msg.message_id, false);
            }
            Recorded::Queued => m.delivery_attempt(&d.peer, DeliveryOutcome::Queued),
            Recorded::Retry => m.delivery_attempt(&d.peer, DeliveryOutcome::Retry),
        }
        false
    }

    /// A hub pushes the receipt of a message we sent through it (`POST /sdx/v1/receipts`, after it answered the
    /// message with 202 and delivered it later): `hub` is the TLS peer, `wire` the reader's signed receipt.
    /// The receipt is judged exactly like one that answers the message directly, and recorded if the delivery
    /// still waits for it. A receipt that does not verify, answers no message of ours to a member of that hub,
    /// or comes from another hub, changes nothing.
    ///
    /// # Errors
    /// [`EngineError::Refused`]: `malformed` (not a receipt), `unknownCase` (no such message of ours; the code
    /// for "not known here"), `senderMismatch` (its reader is not reached through `hub`), or the receipt's
    /// refusal (`signatureInvalid`, `inconsistentCase`); [`EngineError::Store`].
    pub async fn receive_relayed_receipt(&self, hub: &OrgKey, wire: &[u8]) -> Result<RelayedReceipt, EngineError> {
        let text = std::str::from_utf8(wire).map_err(|_| refusal(ErrorCode::Malformed, "a receipt is a JWS"))?.trim();
        let answers = sdx_crypto::jws::decode_unverified(text)
            .ok()
            .and_then(|(_, payload)| sdx_codec::json::decode(&payload).ok())
            .and_then(|m| match m.body {
                sdx_model::Body::Receipt(r) => Some(r.received_message_id),
                _ => None,
            })
            .ok_or_else(|| refusal(ErrorCode::Malformed, "not a receipt message"))?;
        let msg = match self.inner.store.get_message(answers).await? {
            Some(m) if m.direction == Direction::Out => m,
            _ => return Err(refusal(ErrorCode::UnknownCase, format!("no message {answers} was sent from here")).into()),
        };
        let peer = self
            .peer(&msg.peer)
            .filter(|p| p.via_hub.as_ref() == Some(hub))
            .ok_or_else(|| refusal(ErrorCode::SenderMismatch, format!("{} is not reached through {hub}", msg.peer)))?;
        let outcome = self.judge(&peer, &msg, &Ok(text.as_bytes().to_vec()));
        if let Outcome::Failed { error, .. } = outcome {
            return Err(refusal(ErrorCode::SignatureInvalid, error).into());
        }
        let mut tx = self.inner.store.begin().await?;
        let Some(d) = tx.get_delivery(answers).await?.filter(|d| d.state == sdx_store::DeliveryState::Pending) else {
            return Ok(RelayedReceipt::AlreadyRecorded);
        };
        let r = self.record(&mut tx, &d, &msg, &outcome).await?;
        tx.commit().await?;
        self.recorded(&d, &msg, r);
        // The case's next message may be due now; the worker does not know (this came outside its loop).
        self.inner.wake.notify_one();
        Ok(RelayedReceipt::Recorded)
    }

    /// What the answer to a sent message means.
    fn judge(&self, peer: &Peer, msg: &MessageRecord, answer: &Result<Vec<u8>, TransportError>) -> Outcome {
        let body = match answer {
            Ok(b) => b,
            Err(TransportError::Queued(note)) => return Outcome::Queued { note: note.clone() },
            Err(e) => return Outcome::Failed { permanent: !e.is_transient(), error: e.to_string() },
        };
        match protocol::open_receipt(
            body,
            peer.key_for(body),
            &peer.org,
            &self.inner.me.org,
            msg.message_id,
            &msg.digest,
        ) {
            Ok((receipt_msg, receipt)) => Outcome::Receipt {
                jws: String::from_utf8_lossy(body).trim().to_string(),
                receipt_id: receipt_msg.header.message_id,
                receipt,
            },
            // A receipt that does not verify, or answers something else, will not change on retry.
            Err(r) => Outcome::Failed { error: format!("unusable receipt from {}: {r}", peer.org), permanent: true },
        }
    }

    /// Record the outcome of one delivery attempt in `tx`.
    async fn record(
        &self,
        tx: &mut S::Tx,
        d: &Delivery,
        msg: &MessageRecord,
        outcome: &Outcome,
    ) -> Result<Recorded, EngineError> {
        let at = now();
        let (jws, receipt_id, receipt) = match outcome {
            Outcome::Receipt { jws, receipt_id, receipt } => (jws, receipt_id, receipt),
            Outcome::Failed { error, permanent } => {
                return self.record_failure(tx, d, msg, error, *permanent, at).await;
            }
            Outcome::Queued { note } => return self.record_queued(tx, d, msg, note, at).await,
        };
        let rec = ReceiptRecord {
            for_message: msg.message_id,
            direction: Direction::In,
            result: receipt.result,
            jws: jws.clone(),
            received_at: at,
        };
        let errors: Vec<String> = receipt.errors.iter().map(|e| format!("[{}] {}", e.code, e.text)).collect();
        let outcome = match (receipt.result, &receipt.digest) {
            (ReceiptResult::Accepted, _) => {
                tx.mark_delivered(msg.message_id, &rec).await?;
                Recorded::Delivered
            }
            (ReceiptResult::Rejected, Some(_)) => {
                // The peer judged our change and refused it: it lost. Our copy follows without it.
                let case = match msg.case_id {
                    Some(c) => tx.get_case(c).await?,
                    None => None,
                };
                let error = format!("refused by {}: {}", d.peer, errors.join("; "));
                tx.mark_rejected(msg.message_id, &rec, &error).await?;
                if let Some(case) = case {
                    let now_here = self.recompute_all(tx, &case).await?;
                    let state = format!("; our copy is now `{}` at revision {}", now_here.status, now_here.revision);
                    let detail = format!(
                        "our {} #{} lost: {}{state}",
                        msg.message_type,
                        msg.sequence.unwrap_or(0),
                        errors.join("; ")
                    );
                    tx.add_event(&event(case.case.case_id, EventKind::Conflict, Some(msg.message_id), detail)).await?;
                }
                Recorded::Rejected
            }
            (ReceiptResult::Rejected, None) => {
                // The peer kept nothing of it: as good as undelivered, and a retry will not change that.
                tx.put_receipt(&rec).await?;
                let error = format!("refused by {} without keeping it: {}", d.peer, errors.join("; "));
                return self.record_failure(tx, d, msg, &error, true, at).await;
            }
        };
        if let Some(case_id) = msg.case_id {
            let detail = format!("{} for {} (receipt {receipt_id})", receipt.result, msg.message_type);
            tx.add_event(&event(case_id, EventKind::ReceiptReceived, Some(msg.message_id), detail)).await?;
        }
        Ok(outcome)
    }

    /// Record a failed attempt: retry later with exponential backoff and full jitter, or dead-letter it (a
    /// permanent failure, too many attempts, or too old) — which blocks the case's later messages to the peer.
    pub(super) async fn record_failure(
        &self,
        tx: &mut S::Tx,
        d: &Delivery,
        msg: &MessageRecord,
        error: &str,
        permanent: bool,
        at: Timestamp,
    ) -> Result<Recorded, EngineError> {
        let attempts = d.attempts + 1;
        let cfg = &self.inner.delivery;
        let age = at.as_offset_date_time() - d.created_at.as_offset_date_time();
        let too_old = age >= time::Duration::seconds(i64::try_from(cfg.dead_after_s).unwrap_or(i64::MAX));
        let dead = permanent || too_old || attempts >= cfg.max_attempts;
        // Full jitter: anywhere between half and the whole delay, so that retries do not march in step.
        let wait = cfg.backoff(attempts).mul_f64(0.5 + 0.5 * fastrand::f64());
        let error: String = error.chars().take(500).collect();
        let why = if permanent {
            "a retry cannot help"
        } else if too_old {
            "too old"
        } else if dead {
            "too many attempts"
        } else {
            "retried"
        };
        tracing::info!(peer = %d.peer, message_id = %d.message_id, attempts, dead, error = %error, "delivery failed");
        tx.mark_failed(d.message_id, attempts, later(at, wait), &error, dead).await?;
        if let Some(case_id) = msg.case_id {
            let kind = if dead { EventKind::DeadLettered } else { EventKind::DeliveryFailed };
            let detail = format!("attempt {attempts} ({why}): {}", error.chars().take(300).collect::<String>());
            tx.add_event(&event(case_id, kind, Some(d.message_id), detail)).await?;
            if dead {
                let detail = format!(
                    "outgoing messages of this case to {} wait behind dead letter {} (#{}): retry or skip it",
                    d.peer,
                    d.message_id,
                    msg.sequence.unwrap_or(0)
                );
                tx.add_event(&event(case_id, EventKind::Blocked, Some(d.message_id), detail)).await?;
            }
        }
        Ok(if dead { Recorded::Dead } else { Recorded::Retry })
    }

    /// Record that a hub queued the message: the delivery waits for the receipt the hub pushes, and is sent
    /// again after [`crate::settings::DeliverySettings::hub_receipt_wait_s`] should none come (the hub then
    /// answers with the receipt it holds). This counts as no failed attempt; the age limit still applies.
    async fn record_queued(
        &self,
        tx: &mut S::Tx,
        d: &Delivery,
        msg: &MessageRecord,
        note: &str,
        at: Timestamp,
    ) -> Result<Recorded, EngineError> {
        let cfg = &self.inner.delivery;
        let age = at.as_offset_date_time() - d.created_at.as_offset_date_time();
        if age >= time::Duration::seconds(i64::try_from(cfg.dead_after_s).unwrap_or(i64::MAX)) {
            let error = format!("still queued at the hub without a receipt: {note}");
            return self.record_failure(tx, d, msg, &error, true, at).await;
        }
        let via =
            self.peer(&d.peer).and_then(|p| p.via_hub.clone()).map_or_else(|| "the hub".into(), |h| h.to_string());
        let error = format!("queued at {via}, waiting for the receipt of {}: {note}", d.peer);
        let error: String = error.chars().take(500).collect();
        let wait = Duration::from_secs(cfg.hub_receipt_wait_s);
        tx.mark_failed(d.message_id, d.attempts, later(at, wait), &error, false).await?;
        tracing::info!(peer = %d.peer, message_id = %d.message_id, "queued at the hub");
        Ok(Recorded::Queued)
    }

    /// Put a dead letter back into delivery (attempts and age limit start afresh). `false` if it is not dead.
    pub async fn retry_dead(&self, id: MessageId) -> Result<bool, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let ok = tx.retry_dead(id, now()).await?;
        if ok
            && let Some(m) = tx.get_message(id).await?
            && let Some(case_id) = m.case_id
        {
            let detail =
                format!("dead letter {id} (#{}) to {} retried by an operator", m.sequence.unwrap_or(0), m.peer);
            tx.add_event(&event(case_id, EventKind::Retried, Some(id), detail)).await?;
        }
        tx.commit().await?;
        if ok {
            self.inner.wake.notify_one();
        }
        Ok(ok)
    }

    /// Skip a dead letter: its change is withdrawn from our copy of the case (replayed without it), and the
    /// messages of the case that wait behind it are renumbered (sealed again with the sequence numbers that
    /// follow the last one the peer has) and sent. `false` if it is not a dead letter. A forward cannot be skipped
    /// (the peer would not know the case): retry it.
    ///
    /// Only skip a message the peer does not have — what a dead letter normally means; if the peer did keep it
    /// (its answers were lost until the message died), the renumbered messages will be refused as out of order.
    pub async fn skip_dead(&self, id: MessageId) -> Result<bool, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let Some(dead) = tx.get_message(id).await? else { return Ok(false) };
        if dead.direction != Direction::Out || dead.state != MessageState::Dead {
            return Ok(false);
        }
        let (Some(case_id), Some(seq)) = (dead.case_id, dead.sequence) else {
            return Err(refusal(ErrorCode::NotPermitted, "only a case message can be skipped").into());
        };
        if dead.message_type == sdx_model::MessageType::Forward {
            return Err(refusal(ErrorCode::NotPermitted, "a forward cannot be skipped: retry it").into());
        }
        let rec = tx.get_case(case_id).await?.ok_or(EngineError::NotFound(case_id))?;
        tx.skip_dead(id).await?;
        // The messages behind it, renumbered one down, in order.
        let mut behind: Vec<MessageRecord> = tx
            .case_messages(case_id)
            .await?
            .into_iter()
            .filter(|m| m.direction == Direction::Out && m.peer == dead.peer && m.sequence.is_some_and(|s| s > seq))
            .filter(|m| m.state == MessageState::Pending)
            .collect();
        behind.sort_by_key(|m| m.sequence);
        let mut next = seq;
        for old in &behind {
            let m = decode_stored(old)?;
            tx.supersede(old.message_id).await?;
            let out = Outgoing {
                to: dead.peer.clone(),
                case_id,
                body: m.body,
                created_at: m.header.created_at,
                acknowledged: m.header.acknowledged_sequence,
            };
            self.enqueue_numbered(&mut tx, &out, next, None).await?;
            next += 1;
        }
        tx.set_last_out_sequence(case_id, &dead.peer, next - 1).await?;
        let detail = format!(
            "dead letter {id} ({} #{seq}) to {} skipped by an operator: its change is withdrawn; {} message(s) behind it renumbered",
            dead.message_type,
            dead.peer,
            behind.len()
        );
        tx.add_event(&event(case_id, EventKind::Skipped, Some(id), detail)).await?;
        let _withdrawn = self.recompute_all(&mut tx, &rec).await?;
        tx.commit().await?;
        self.inner.wake.notify_one();
        Ok(true)
    }
}

impl<S: Store> Engine<S> {
    /// Post the messages to `peer`, reached through a hub, each in an envelope (several as one batch): encrypted to the
    /// peer's key (under this node's content key for the peer, [`Engine::content_key`]), signed by us
    /// (`crate::envelope`). A new envelope per attempt; what the receipt quotes is the message inside.
    async fn post_enveloped<T: Transport>(
        &self,
        transport: &T,
        peer: &Peer,
        msgs: &[MessageRecord],
    ) -> Vec<Result<Vec<u8>, TransportError>> {
        let wires: Vec<Result<String, TransportError>> = msgs
            .iter()
            .map(|m| match (&peer.encryption_key, super::inbox::decode_stored(m)) {
                (None, _) => Err(format!("{} is reached through a hub but publishes no encryption key", peer.org)),
                (_, Err(e)) => Err(e.to_string()),
                (Some(key), Ok(msg)) => self
                    .content_key(&peer.org, key)
                    .and_then(|ck| crate::envelope::seal_with(&m.jws, &msg.header, &ck, &self.inner.me.signing_key))
                    .map_err(|e| format!("sealing the envelope: {e}")),
            })
            .map(|w| w.map_err(TransportError::Protocol))
            .collect();
        let sealed: Vec<&str> = wires.iter().filter_map(|w| w.as_deref().ok()).collect();
        let mut answers = post_all(transport, peer, &sealed).await.into_iter();
        wires
            .iter()
            .map(|w| match w {
                Ok(_) => answers.next().unwrap_or_else(|| Err(TransportError::Protocol("no answer".into()))),
                Err(e) => Err(e.clone()),
            })
            .collect()
    }
}

/// Post the messages (sealed, or enveloped for a hub) to `peer`: those small enough together as one batch, the
/// others one by one. One answer per message, in order.
async fn post_all<T: Transport>(transport: &T, peer: &Peer, msgs: &[&str]) -> Vec<Result<Vec<u8>, TransportError>> {
    let small: Vec<usize> = (0..msgs.len()).filter(|&i| msgs[i].len() <= protocol::MAX_BATCH_ITEM_BYTES).collect();
    let mut answers: Vec<Option<Result<Vec<u8>, TransportError>>> = msgs.iter().map(|_| None).collect();
    if small.len() > 1 {
        let jws: Vec<&str> = small.iter().map(|&i| msgs[i]).collect();
        for (&i, a) in small.iter().zip(batch_answers(transport, peer, &jws).await) {
            answers[i] = Some(a);
        }
    }
    let mut out = Vec::with_capacity(msgs.len());
    for (i, a) in answers.into_iter().enumerate() {
        out.push(match a {
            Some(a) => a,
            None => transport.post(peer, msgs[i]).await,
        });
    }
    out
}

/// POST `jws` to `peer` as one batch: one answer per message, in order. A request that failed, or an answer with
/// another number of results than messages, is every message's answer.
pub(super) async fn batch_answers<T: Transport>(
    transport: &T,
    peer: &Peer,
    jws: &[&str],
) -> Vec<Result<Vec<u8>, TransportError>> {
    match transport.post_batch(peer, jws).await {
        Ok(items) if items.len() == jws.len() => items,
        Ok(items) => {
            let e = TransportError::Protocol(format!(
                "the batch answer of {} has {} results for {} messages",
                peer.org,
                items.len(),
                jws.len()
            ));
            jws.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => jws.iter().map(|_| Err(e.clone())).collect(),
    }
}
