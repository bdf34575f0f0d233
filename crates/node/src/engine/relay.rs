//! The hub's outbox (`role = "hub"`, `docs/routing.md`, *Hub*): members' envelopes are stored and forwarded, and
//! the readers' receipts relayed back — on the envelope's route alone, the case content stays encrypted.
//!
//! [`Engine::relay_known`] answers an envelope whose message id the hub has seen (an author's retry, in a new
//! envelope): the stored receipt, "queued" while it waits, the dead letter's reason once the hub has given up.
//! A new one is sent to its reader at once ([`Engine::relay_first`]) and then, in **one** transaction, stored as
//! an outgoing message to the reader with its delivery and the outcome: the reader's receipt (verified: the
//! reader's signature, for this message), answered to the author with 200 — the hub takes no custody of a
//! message the reader already has; or, the reader not reachable, the envelope pending in the hub's outbox,
//! answered with 202 — only after that commit: from then on the hub has it. The hub's worker
//! ([`Engine::relay_due`]) retries it with the node's backoff and, once the reader's receipt is there, puts a
//! second delivery into the outbox: the receipt pushed to the author (`POST /sdx/v1/receipts`). A hub killed
//! during a first attempt has stored nothing and answered nothing: the author sends it again.
//!
//! Per member, the hub's deliveries are the operator's delivery state (`GET /api/v1/deliveries`, dead letters
//! retried like a node's), counted in `sdx_delivery_attempts_total{peer,outcome}`.

use sdx_model::{Body, ErrorCode, MessageType, OrgKey, ReceiptResult, Timestamp};
use sdx_store::{Delivery, Direction, MessageRecord, MessageState, ReceiptRecord, Store, StoreTx};

use super::local::store_outgoing;
use super::outbox::Recorded;
use super::{Engine, EngineError, Peer, Transport, TransportError, now, refusal};
use crate::envelope::Route;
use crate::protocol;

/// What the hub knows of an envelope whose message id it has seen ([`Engine::relay_known`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Seen before and delivered: the reader's receipt.
    Delivered(String),
    /// Seen before, still in the outbox: why it waits.
    Queued(String),
    /// Seen before, and the hub gave up on it: why.
    Dead(String),
}

/// The answer the hub gives the author after an attempt ([`Engine::relay_first`]).
#[derive(Debug, Clone)]
pub enum Relayed {
    /// The reader's verified receipt (positive or negative), stored: 200 with it.
    Receipt(String),
    /// Not delivered yet, the hub keeps it and will push the receipt: 202.
    Queued(String),
    /// The reader refused it for good (its problem, passed on), or its answer was unusable.
    Refused(TransportError),
}

/// Which attempt at an envelope is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The handler's, before the envelope is stored.
    First,
    /// The worker's, from the hub's outbox.
    Worker,
}

impl From<Accepted> for Relayed {
    /// The answer for an envelope the hub had seen: its receipt, queued, or refused with the dead letter's reason.
    fn from(a: Accepted) -> Relayed {
        match a {
            Accepted::Delivered(r) => Relayed::Receipt(r),
            Accepted::Queued(why) => Relayed::Queued(why),
            Accepted::Dead(why) => Relayed::Refused(TransportError::Protocol(why)),
        }
    }
}

impl Relayed {
    /// A word for the log.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Relayed::Receipt(_) => "receipt",
            Relayed::Queued(_) => "queued",
            Relayed::Refused(_) => "refused",
        }
    }
}

impl<S: Store> Engine<S> {
    /// What became of the envelope's message id, if the hub has seen it.
    ///
    /// # Errors
    /// [`EngineError::Refused`] `replay` if the message id is known with another author, reader or type;
    /// [`EngineError::Store`].
    pub async fn relay_known(&self, route: &Route) -> Result<Option<Accepted>, EngineError> {
        let Some(m) = self.inner.store.get_message(route.message_id).await? else { return Ok(None) };
        let author = crate::envelope::peek(m.jws.as_bytes()).map(|r| r.author).ok();
        if m.peer != route.reader || author.as_ref() != Some(&route.author) || m.message_type != route.message_type {
            let detail = format!("message {} is known here with another route", route.message_id);
            return Err(refusal(ErrorCode::Replay, detail).into());
        }
        let mut tx = self.inner.store.begin().await?;
        let d = tx.get_delivery(m.message_id).await?;
        let receipt = tx.get_receipt(m.message_id, Direction::In).await?;
        drop(tx);
        let why = |d: Option<&Delivery>| d.and_then(|d| d.last_error.clone()).unwrap_or_else(|| "first attempt".into());
        Ok(Some(match (m.state, receipt) {
            (MessageState::Delivered, Some(r)) => Accepted::Delivered(r.jws),
            (MessageState::Dead | MessageState::Skipped, _) => Accepted::Dead(why(d.as_ref())),
            _ => Accepted::Queued(why(d.as_ref())),
        }))
    }

    /// The first attempt for a new envelope, made by the hub's handler: send it to `reader`, then store it with
    /// what came back, in one transaction, before the author is answered.
    ///
    /// # Errors
    /// [`EngineError::Store`] if it cannot be stored (the author is answered 503 and sends it again).
    pub async fn relay_first<T: Transport>(
        &self,
        transport: &T,
        route: &Route,
        wire: &str,
        reader: &Peer,
    ) -> Result<Relayed, EngineError> {
        let answer = transport.post(reader, wire).await;
        let (msg, d) = first_records(route, wire, now());
        match self.relay_record(&d, &msg, &route.author, reader, answer, Attempt::First).await {
            // The same envelope came twice at once and the other request stored it first: answer from that.
            Err(EngineError::Store(sdx_store::Error::Duplicate)) => Ok(self
                .relay_known(route)
                .await?
                .map_or_else(|| Relayed::Queued("being relayed".into()), Relayed::from)),
            other => other,
        }
    }

    /// The hub's worker: send claimed deliveries — envelopes to their readers, receipts to their authors — and
    /// record each outcome. Returns how many were delivered.
    ///
    /// # Errors
    /// [`EngineError::Store`].
    pub async fn relay_due<T: Transport>(&self, transport: &T, ds: Vec<Delivery>) -> Result<usize, EngineError> {
        let sends = ds.into_iter().map(|d| async move {
            let Some(msg) = self.inner.store.get_message(d.message_id).await? else { return Ok(false) };
            let Some(peer) = self.peer(&d.peer) else {
                let mut tx = self.inner.store.begin().await?;
                let r = self.record_failure(&mut tx, &d, &msg, "the member is no longer known", true, now()).await?;
                tx.commit().await?;
                return Ok(self.recorded(&d, &msg, r));
            };
            if msg.message_type == MessageType::Receipt {
                let answer = transport.push_receipt(&peer, &msg.jws).await;
                self.relay_pushed(&d, &msg, answer).await
            } else {
                let author = crate::envelope::peek(msg.jws.as_bytes()).map_err(|r| refusal(r.code, r.message))?.author;
                let answer = transport.post(&peer, &msg.jws).await;
                let relayed = self.relay_record(&d, &msg, &author, &peer, answer, Attempt::Worker).await?;
                Ok(matches!(relayed, Relayed::Receipt(_)))
            }
        });
        let results: Vec<Result<bool, EngineError>> = futures_util::future::join_all(sends).await;
        let mut delivered = 0;
        for r in results {
            delivered += usize::from(r?);
        }
        Ok(delivered)
    }

    /// Record the reader's answer to an envelope: after the first attempt with the envelope itself (stored now);
    /// after the worker's, a receipt that arrives is queued for its author.
    async fn relay_record(
        &self,
        d: &Delivery,
        msg: &MessageRecord,
        author: &OrgKey,
        reader: &Peer,
        answer: Result<Vec<u8>, TransportError>,
        attempt: Attempt,
    ) -> Result<Relayed, EngineError> {
        let mut tx = self.inner.store.begin().await?;
        let (r, relayed) = self.relay_record_in(&mut tx, d, msg, author, reader, answer, attempt).await?;
        tx.commit().await?;
        self.relayed(d, msg, r, attempt);
        Ok(relayed)
    }

    /// After the commit of a recorded relay outcome.
    fn relayed(&self, d: &Delivery, msg: &MessageRecord, r: Recorded, attempt: Attempt) {
        self.recorded(d, msg, r);
        if attempt == Attempt::Worker && r == Recorded::Delivered {
            self.inner.wake.notify_one();
        }
    }

    /// [`Engine::relay_record`] in `tx`.
    #[allow(clippy::too_many_arguments)]
    async fn relay_record_in(
        &self,
        tx: &mut S::Tx,
        d: &Delivery,
        msg: &MessageRecord,
        author: &OrgKey,
        reader: &Peer,
        answer: Result<Vec<u8>, TransportError>,
        attempt: Attempt,
    ) -> Result<(Recorded, Relayed), EngineError> {
        let at = now();
        if attempt == Attempt::First {
            store_outgoing(tx, msg).await?;
        }
        Ok(match answer.map(|body| reader_receipt(msg, author, reader, &body)) {
            Ok(Ok((jws, result, receipt_id))) => {
                let rec = ReceiptRecord {
                    for_message: msg.message_id,
                    direction: Direction::In,
                    result,
                    jws: jws.clone(),
                    received_at: at,
                };
                tx.mark_delivered(msg.message_id, &rec).await?;
                if attempt == Attempt::Worker {
                    self.queue_push(tx, author, receipt_id, &jws, at).await?;
                }
                (Recorded::Delivered, Relayed::Receipt(jws))
            }
            Ok(Err(why)) => {
                let r = self.record_failure(tx, d, msg, &why, true, at).await?;
                (r, Relayed::Refused(TransportError::Protocol(why)))
            }
            Err(e) => {
                let transient = e.is_transient();
                let r = self.record_failure(tx, d, msg, &e.to_string(), !transient, at).await?;
                match r {
                    Recorded::Retry => (r, Relayed::Queued(format!("{} cannot be reached now: {e}", reader.org))),
                    _ => (r, Relayed::Refused(e)),
                }
            }
        })
    }

    /// The first attempt for several new envelopes to one reader, from one author's batch: sent to the reader as
    /// one batch request, then stored with their outcomes in one transaction. One answer per envelope, in order.
    ///
    /// # Errors
    /// [`EngineError::Store`] if they cannot be stored (nothing of the batch is; the author sends them again).
    pub async fn relay_first_batch<T: Transport>(
        &self,
        transport: &T,
        reader: &Peer,
        items: &[(Route, &str)],
    ) -> Result<Vec<Relayed>, EngineError> {
        if items.len() == 1 {
            let (route, wire) = &items[0];
            return Ok(vec![self.relay_first(transport, route, wire, reader).await?]);
        }
        let wires: Vec<&str> = items.iter().map(|(_, w)| *w).collect();
        let answers = super::outbox::batch_answers(transport, reader, &wires).await;
        let at = now();
        let mut tx = self.inner.store.begin().await?;
        let mut done = Vec::with_capacity(items.len());
        for ((route, wire), answer) in items.iter().zip(answers) {
            let (msg, d) = first_records(route, wire, at);
            match self.relay_record_in(&mut tx, &d, &msg, &route.author, reader, answer, Attempt::First).await {
                Ok((r, relayed)) => done.push((msg, d, r, relayed)),
                // Known meanwhile (a concurrent request of the same author): that request answers for it.
                Err(EngineError::Store(sdx_store::Error::Duplicate)) => {
                    drop(tx);
                    return Box::pin(self.relay_known_all(transport, reader, items)).await;
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        Ok(done
            .into_iter()
            .map(|(msg, d, r, relayed)| {
                self.relayed(&d, &msg, r, Attempt::First);
                relayed
            })
            .collect())
    }

    /// Each envelope of a batch one by one (after a concurrent request stored one of them).
    async fn relay_known_all<T: Transport>(
        &self,
        transport: &T,
        reader: &Peer,
        items: &[(Route, &str)],
    ) -> Result<Vec<Relayed>, EngineError> {
        let mut out = Vec::with_capacity(items.len());
        for (route, wire) in items {
            out.push(match self.relay_known(route).await? {
                Some(known) => known.into(),
                None => self.relay_first(transport, route, wire, reader).await?,
            });
        }
        Ok(out)
    }

    /// Queue the reader's receipt for its author (in the transaction that records it).
    async fn queue_push(
        &self,
        tx: &mut S::Tx,
        author: &OrgKey,
        receipt_id: sdx_model::MessageId,
        jws: &str,
        at: Timestamp,
    ) -> Result<(), EngineError> {
        let rec = MessageRecord {
            message_id: receipt_id,
            case_id: None,
            direction: Direction::Out,
            peer: author.clone(),
            message_type: MessageType::Receipt,
            sequence: None,
            created_at: at,
            stored_at: at,
            jws: jws.to_string(),
            digest: protocol::sha256(jws.as_bytes()),
            state: MessageState::Pending,
        };
        match store_outgoing(tx, &rec).await {
            // Recorded twice (the handler's attempt and the worker's overlapped): queued already.
            Err(EngineError::Store(sdx_store::Error::Duplicate)) => Ok(()),
            other => other,
        }
    }

    /// Record the author's answer to a pushed receipt.
    async fn relay_pushed(
        &self,
        d: &Delivery,
        msg: &MessageRecord,
        answer: Result<(), TransportError>,
    ) -> Result<bool, EngineError> {
        let at = now();
        let mut tx = self.inner.store.begin().await?;
        let r = match answer {
            Ok(()) => {
                // The proof that the author has it is its 204; the receipt itself is what was delivered.
                let rec = ReceiptRecord {
                    for_message: msg.message_id,
                    direction: Direction::In,
                    result: ReceiptResult::Accepted,
                    jws: msg.jws.clone(),
                    received_at: at,
                };
                tx.mark_delivered(msg.message_id, &rec).await?;
                Recorded::Delivered
            }
            Err(e) => self.record_failure(&mut tx, d, msg, &e.to_string(), !e.is_transient(), at).await?,
        };
        tx.commit().await?;
        Ok(self.recorded(d, msg, r))
    }
}

/// The reader's answer as its receipt for `msg` of `author`: `(receipt JWS, result, receipt's message id)`, or why
/// not (not signed by the reader, not addressed to the author, not a receipt for this message).
fn reader_receipt(
    msg: &MessageRecord,
    author: &OrgKey,
    reader: &Peer,
    body: &[u8],
) -> Result<(String, ReceiptResult, sdx_model::MessageId), String> {
    let opened = protocol::open(body, reader.key_for(body), &reader.org, author)
        .map_err(|r| format!("unusable receipt from {}: {r}", reader.org))?;
    match &opened.message.body {
        Body::Receipt(r) if r.received_message_id == msg.message_id => {
            Ok((opened.jws, r.result, opened.message.header.message_id))
        }
        _ => Err(format!("unusable receipt from {}: not a receipt for {}", reader.org, msg.message_id)),
    }
}

/// The outgoing message and the delivery a new envelope is stored as.
fn first_records(route: &Route, wire: &str, at: Timestamp) -> (MessageRecord, Delivery) {
    let msg = MessageRecord {
        message_id: route.message_id,
        case_id: None,
        direction: Direction::Out,
        peer: route.reader.clone(),
        message_type: route.message_type,
        sequence: None,
        created_at: route.created_at,
        stored_at: at,
        jws: wire.to_string(),
        digest: protocol::sha256(wire.as_bytes()),
        state: MessageState::Pending,
    };
    let d = Delivery::pending(route.message_id, route.reader.clone(), at);
    (msg, d)
}
