//! The hub's outbox (`role = "hub"`, `docs/routing.md`, *Hub*): members' envelopes are stored and forwarded, and
//! the readers' receipts relayed back — on the envelope's route alone, the case content stays encrypted.
//!
//! [`Engine::relay_accept`] commits an envelope (checked by `crate::hub`) as an outgoing message to its reader
//! with a delivery, before anything is answered; the hub's handler then makes the first attempt at once
//! ([`Engine::relay_attempt`]). The reader's receipt (verified: the reader's signature, for this message) is
//! stored and answered to the author in the same request (200), so a hub adds one commit to the direct path.
//! If the reader cannot be reached, the author gets 202 and the delivery stays in the hub's outbox; the hub's
//! worker ([`Engine::relay_due`]) retries with the node's backoff and, once the reader's receipt is there, puts
//! a second delivery into the outbox: the receipt pushed to the author (`POST /sdx/v1/receipts`). The same
//! envelope again (an author's retry, in a new envelope with the same message id) is answered from the outbox:
//! the stored receipt, 202 while pending, the dead letter's reason once the hub has given up.
//!
//! Per member, the hub's deliveries are the operator's delivery state (`GET /api/v1/deliveries`, dead letters
//! retried or skipped like a node's), counted in `sdx_delivery_attempts_total{peer,outcome}`.

use std::time::Duration;

use sdx_model::{Body, ErrorCode, MessageType, ReceiptResult, Timestamp};
use sdx_store::{Delivery, DeliveryState, Direction, MessageRecord, MessageState, ReceiptRecord, Store, StoreTx};

use super::outbox::Recorded;
use super::{Engine, EngineError, Peer, Transport, TransportError, later, now, refusal};
use crate::envelope::Route;
use crate::protocol;

/// How long the hub's handler owns the first attempt of an envelope it has just stored: the worker takes the
/// delivery only after this (if the hub was killed during the attempt, or the attempt took longer).
const FIRST_ATTEMPT: Duration = Duration::from_secs(30);

/// What the hub knows of an envelope that arrives ([`Engine::relay_accept`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// New: stored with its delivery; the caller makes the first attempt ([`Engine::relay_attempt`]).
    New(Delivery),
    /// Seen before and delivered: the reader's receipt.
    Delivered(String),
    /// Seen before, still in the outbox: why it waits.
    Queued(String),
    /// Seen before, and the hub gave up on it: why.
    Dead(String),
}

/// The answer the hub gives the author after an attempt ([`Engine::relay_attempt`]).
#[derive(Debug, Clone)]
pub enum Relayed {
    /// The reader's verified receipt (positive or negative), stored: 200 with it.
    Receipt(String),
    /// Not delivered yet, the hub keeps it and will push the receipt: 202.
    Queued(String),
    /// The reader refused it for good (its problem, passed on), or its answer was unusable.
    Refused(TransportError),
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
    /// Store an envelope for its reader (the route checked by the caller), or say what became of it if its
    /// message id is known. Committed before it returns.
    ///
    /// # Errors
    /// [`EngineError::Refused`] `replay` if the message id is known with another author or reader;
    /// [`EngineError::Store`].
    pub async fn relay_accept(&self, route: &Route, wire: &str) -> Result<Accepted, EngineError> {
        if let Some(known) = self.relay_known(route).await? {
            return Ok(known);
        }
        let at = now();
        let rec = MessageRecord {
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
        let d = Delivery {
            message_id: route.message_id,
            peer: route.reader.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: at,
            next_attempt_at: later(at, FIRST_ATTEMPT),
            last_error: None,
            delivered_at: None,
        };
        let mut tx = self.inner.store.begin().await?;
        match tx.insert_message(&rec).await {
            Ok(()) => {}
            // The same envelope arrived twice at once: the other request has it.
            Err(sdx_store::Error::Duplicate) => {
                drop(tx);
                return Ok(self.relay_known(route).await?.unwrap_or(Accepted::Queued("being relayed".into())));
            }
            Err(e) => return Err(e.into()),
        }
        tx.enqueue(&d).await?;
        tx.commit().await?;
        Ok(Accepted::New(d))
    }

    /// What became of a known message id, if it is known.
    async fn relay_known(&self, route: &Route) -> Result<Option<Accepted>, EngineError> {
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

    /// The first attempt for an envelope just stored, made by the hub's handler: send it to `reader` and record
    /// what came back.
    ///
    /// # Errors
    /// [`EngineError::Store`] if the outcome cannot be recorded (the worker sends it again later).
    pub async fn relay_attempt<T: Transport>(
        &self,
        transport: &T,
        d: &Delivery,
        reader: &Peer,
    ) -> Result<Relayed, EngineError> {
        let Some(msg) = self.inner.store.get_message(d.message_id).await? else {
            return Err(EngineError::Store(sdx_store::Error::Corrupt(format!("delivery without message {}", d.message_id))));
        };
        let answer = transport.post(reader, &msg.jws).await;
        self.relay_record(d, &msg, reader, answer, false).await
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
                let answer = transport.post(&peer, &msg.jws).await;
                let relayed = self.relay_record(&d, &msg, &peer, answer, true).await?;
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

    /// Record the reader's answer to an envelope; with `push`, a receipt that arrives is queued for its author.
    async fn relay_record(
        &self,
        d: &Delivery,
        msg: &MessageRecord,
        reader: &Peer,
        answer: Result<Vec<u8>, TransportError>,
        push: bool,
    ) -> Result<Relayed, EngineError> {
        let at = now();
        let mut tx = self.inner.store.begin().await?;
        let (r, relayed) = match answer.map(|body| self.reader_receipt(msg, reader, &body)) {
            Ok(Ok((jws, result, receipt_id))) => {
                let rec = ReceiptRecord {
                    for_message: msg.message_id,
                    direction: Direction::In,
                    result,
                    jws: jws.clone(),
                    received_at: at,
                };
                tx.mark_delivered(msg.message_id, &rec).await?;
                if push {
                    self.queue_push(&mut tx, msg, receipt_id, &jws, at).await?;
                }
                (Recorded::Delivered, Relayed::Receipt(jws))
            }
            Ok(Err(why)) => {
                let r = self.record_failure(&mut tx, d, msg, &why, true, at).await?;
                (r, Relayed::Refused(TransportError::Protocol(why)))
            }
            Err(e) => {
                let transient = e.is_transient();
                let r = self.record_failure(&mut tx, d, msg, &e.to_string(), !transient, at).await?;
                match r {
                    Recorded::Retry => (r, Relayed::Queued(format!("{} cannot be reached now: {e}", reader.org))),
                    _ => (r, Relayed::Refused(e)),
                }
            }
        };
        tx.commit().await?;
        self.recorded(d, msg, r);
        if push && r == Recorded::Delivered {
            self.inner.wake.notify_one();
        }
        Ok(relayed)
    }

    /// The reader's answer as its receipt for `msg`: `(receipt JWS, result, receipt's message id)`, or why not.
    fn reader_receipt(
        &self,
        msg: &MessageRecord,
        reader: &Peer,
        body: &[u8],
    ) -> Result<(String, ReceiptResult, sdx_model::MessageId), String> {
        let author = crate::envelope::peek(msg.jws.as_bytes()).map_err(|r| r.message)?.author;
        let opened = protocol::open(body, reader.key_for(body), &reader.org, &author)
            .map_err(|r| format!("unusable receipt from {}: {r}", reader.org))?;
        match &opened.message.body {
            Body::Receipt(r) if r.received_message_id == msg.message_id => {
                Ok((opened.jws, r.result, opened.message.header.message_id))
            }
            _ => Err(format!("unusable receipt from {}: not a receipt for {}", reader.org, msg.message_id)),
        }
    }

    /// Queue the reader's receipt for its author (in the transaction that records it).
    async fn queue_push(
        &self,
        tx: &mut S::Tx,
        msg: &MessageRecord,
        receipt_id: sdx_model::MessageId,
        jws: &str,
        at: Timestamp,
    ) -> Result<(), EngineError> {
        let author = crate::envelope::peek(msg.jws.as_bytes()).map_err(|r| refusal(r.code, r.message))?.author;
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
        match tx.insert_message(&rec).await {
            Ok(()) => {}
            // Recorded twice (the handler's attempt and the worker's overlapped): queued already.
            Err(sdx_store::Error::Duplicate) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let d = Delivery {
            message_id: receipt_id,
            peer: author,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: at,
            next_attempt_at: at,
            last_error: None,
            delivered_at: None,
        };
        tx.enqueue(&d).await?;
        Ok(())
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
