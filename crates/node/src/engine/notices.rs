//! Service notices (use case 2.3): an operator's disruption or maintenance notice for services and regions.
//! Publishing one stores it as this node's latest version of the notice and, in the same transaction, puts one
//! sealed, signed message per recipient into the outbox (the transactional outbox of case messages: delivered with
//! receipts, retried, dead-lettered). Updating is publishing the same notice id again; ending is publishing it as a
//! `resolution`. A notice received from a peer is stored the same way in the transaction that answers it
//! (`inbox`).
//!
//! Notice messages carry no case id and no sequence number: they are not ordered behind each other in the outbox
//! and a dead one blocks nothing. Their order is the notice's own: of two versions of a notice, the one issued
//! later (`createdAt`, then message id) wins wherever it arrives (`sdx_store::NoticeRecord`); this node makes each
//! version it publishes later than the one it holds.
//!
//! Who gets a notice is decided in one place, [`Engine::notice_recipients`]: with the directory of
//! responsibilities the organisations responsible for the notice's services in its regions, and portals and service
//! desks; without one every peer.

use std::time::Duration;

use sdx_model::{Body, ItemId, Message, MessageId, MessageType, NoticeType, OrgKey, ServiceNotice, Timestamp};
use sdx_store::{Direction, MessageRecord, MessageState, NoticeRecord, Store, StoreTx};

use super::local::store_outgoing;
use super::{Engine, EngineError, later, now, refusal};
use crate::protocol::Sealed;

/// A notice version this node published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The notice as published.
    pub notice: ServiceNotice,
    /// When this version was issued (the messages' `createdAt`).
    pub issued_at: Timestamp,
    /// The organisations it was sent to, in order.
    pub recipients: Vec<OrgKey>,
    /// The message to each recipient, in the same order.
    pub message_ids: Vec<MessageId>,
    /// No version of this notice was held here before.
    pub created: bool,
}

impl<S: Store> Engine<S> {
    /// The organisations a notice goes to: the peers that accept service notices — with a directory, only those
    /// responsible for one of its services in (a region overlapping) its regions, and portals and service desks
    /// ([`sdx_directory::LoadedDirectory::notice_audience`]); without one, every such peer. Ordered by key.
    pub fn notice_recipients(&self, notice: &ServiceNotice) -> Vec<OrgKey> {
        let accepts =
            |p: &super::Peer| p.message_types.as_ref().is_none_or(|t| t.contains(&MessageType::ServiceNotice));
        let audience = self.directory().and_then(|h| h.current()).map(|d| {
            let services: Vec<sdx_directory::ServiceId> =
                notice.services.iter().flat_map(sdx_directory::ServiceId::all_of).collect();
            d.notice_audience(&services, &notice.regions)
        });
        self.peers()
            .iter()
            .filter(|p| accepts(p) && audience.as_ref().is_none_or(|a| a.contains(&p.org)))
            .map(|p| p.org.clone())
            .collect()
    }

    /// Publish (or update, same notice id) one of this organisation's notices: store it as the latest version and
    /// queue it for every recipient, in one transaction. The notice is checked by the model's rules first (one
    /// service at least, title one line of at most 255 characters, text at most 65,536, lists at most 100,
    /// `endsAt` not before `startsAt`); a refusal changes nothing.
    pub async fn publish_notice(&self, notice: ServiceNotice) -> Result<Published, EngineError> {
        let body = Body::ServiceNotice(notice.clone());
        if let Some(d) = sdx_codec::validate::check_body(&body).into_iter().next() {
            return Err(refusal(d.code, d.to_string()).into());
        }
        let recipients = self.notice_recipients(&notice);
        let mut at = now();
        // Sealing is CPU work: done before the transaction, again inside only if the time must move on.
        let mut sealed = self.seal_notice(&body, &recipients, at)?;
        let me = &self.inner.me;
        let mut tx = self.inner.store.begin().await?;
        let existing = tx.get_notice(&me.org, notice.notice_id).await?;
        if let Some(prev) = &existing
            && prev.issued_at.unix_millis() >= at.unix_millis()
        {
            // Two versions within a millisecond, or the clock went back: this one must still be the later one.
            at = later(prev.issued_at, Duration::from_millis(1));
            sealed = self.seal_notice(&body, &recipients, at)?;
        }
        let stored_at = now();
        let mut message_ids = Vec::with_capacity(sealed.len());
        for (to, (m, Sealed { jws, digest })) in recipients.iter().zip(sealed) {
            let id = m.header.message_id;
            let record = MessageRecord {
                message_id: id,
                case_id: None,
                direction: Direction::Out,
                peer: to.clone(),
                message_type: MessageType::ServiceNotice,
                sequence: None,
                created_at: at,
                stored_at,
                jws,
                digest,
                state: MessageState::Pending,
            };
            store_outgoing(&mut tx, &record).await?;
            message_ids.push(id);
        }
        let rec = NoticeRecord {
            origin: me.org.clone(),
            notice: notice.clone(),
            message_id: message_ids.first().copied().unwrap_or_else(MessageId::new_time_ordered),
            issued_at: at,
            received_at: stored_at,
        };
        if !tx.put_notice(&rec).await? {
            // Another version was made meanwhile (it holds the row on PostgreSQL; cannot happen on SQLite).
            return Err(EngineError::Conflict);
        }
        tx.commit().await?;
        if !message_ids.is_empty() {
            self.inner.wake.notify_one();
        }
        tracing::info!(notice_id = %notice.notice_id, notice_type = %notice.notice_type, recipients = recipients.len(),
            "service notice published");
        Ok(Published { notice, issued_at: at, recipients, message_ids, created: existing.is_none() })
    }

    /// End one of this organisation's notices: publish it again as a `resolution`, ending now (or at its start,
    /// for a window that has not begun). Ending a notice that is ended already (a resolution) is idempotent: it
    /// returns that version and sends nothing. [`EngineError::UnknownNotice`] if this node never published a
    /// notice with that id.
    pub async fn end_notice(&self, id: ItemId) -> Result<Published, EngineError> {
        let current = {
            let mut tx = self.inner.store.begin().await?;
            tx.get_notice(&self.inner.me.org, id).await?
            // dropped: read only
        };
        let Some(current) = current else {
            return Err(EngineError::UnknownNotice(id));
        };
        if current.notice.notice_type == NoticeType::Resolution {
            return Ok(Published {
                notice: current.notice,
                issued_at: current.issued_at,
                recipients: Vec::new(),
                message_ids: Vec::new(),
                created: false,
            });
        }
        let mut end = current.notice;
        let at = now();
        end.ends_at = Some(if at < end.starts_at { end.starts_at } else { at });
        end.notice_type = NoticeType::Resolution;
        self.publish_notice(end).await
    }

    /// The notice as a message to each recipient, checked like every outgoing message, and sealed.
    fn seal_notice(
        &self,
        body: &Body,
        recipients: &[OrgKey],
        at: Timestamp,
    ) -> Result<Vec<(Message, Sealed)>, EngineError> {
        let me = &self.inner.me;
        recipients
            .iter()
            .map(|to| {
                let mut header = me.header(MessageType::ServiceNotice, to, None, None, None, None);
                header.created_at = at;
                let m = Message { header, body: body.clone() };
                if let Some(d) = sdx_codec::validate::check(&m).into_iter().next() {
                    return Err(refusal(d.code, d.to_string()).into());
                }
                let sealed = me.seal(&m)?;
                Ok((m, sealed))
            })
            .collect()
    }
}
