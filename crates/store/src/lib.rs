#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::future::Future;

use sdx_model::{CaseId, MessageId, OrgKey, Timestamp};

mod any;
pub mod error;
pub mod postgres;
mod queries;
pub mod record;
pub mod sqlite;
mod sqlite_queries;

pub use any::{AnyStore, AnyTx, open_any};
pub use error::{Error, Result};
pub use postgres::{PgStore, PgTx};
pub use record::{
    CaseQuery, CaseRecord, Delivery, DeliveryState, Direction, EventKind, MAX_PAGE, MessageRecord, MessageState,
    OurRole, Page, ReceiptRecord, TimelineEvent,
};
pub use sqlite::{CommitStats, SqliteStore, SqliteTx};

/// The durable storage of one SDX node. Cloning is cheap (the clones share the connection pools).
///
/// Reads on the store itself run outside any transaction, each on a consistent snapshot; everything that must
/// change together goes through one [`StoreTx`] from [`Store::begin`].
pub trait Store: Clone + Send + Sync + 'static {
    /// The engine's transaction.
    type Tx: StoreTx;

    /// Begin a write transaction. Dropping it without [`StoreTx::commit`] rolls it back.
    ///
    /// SQLite: one writer at a time (`BEGIN IMMEDIATE` on the single writer connection, then a savepoint per
    /// transaction); concurrent callers queue here, and their commits are grouped into one durable `fsync` (see
    /// [`sqlite`]). So keep transactions short and never await the network, or another task that needs to
    /// write, while holding one. PostgreSQL: an ordinary `READ COMMITTED` transaction.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx>> + Send;

    /// A case by id.
    fn get_case(&self, id: CaseId) -> impl Future<Output = Result<Option<CaseRecord>>> + Send;

    /// Cases matching `q`, ordered by (`updated_at`, case id), one page at a time.
    fn query_cases(&self, q: &CaseQuery) -> impl Future<Output = Result<Page<CaseRecord>>> + Send;

    /// The timeline of a case, oldest first (events with the same time in insertion order).
    fn timeline(&self, id: CaseId) -> impl Future<Output = Result<Vec<TimelineEvent>>> + Send;

    /// A message by id.
    fn get_message(&self, id: MessageId) -> impl Future<Output = Result<Option<MessageRecord>>> + Send;

    /// Deliveries, optionally only in one state, oldest first, at most `limit` (capped at [`MAX_PAGE`]).
    fn list_deliveries(
        &self,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;
}

/// One write transaction. Every method runs inside it; nothing is visible to others before [`StoreTx::commit`],
/// and dropping it uncommitted rolls everything back.
///
/// The expected outcomes [`Error::Conflict`], [`Error::Duplicate`] and [`Error::NotFound`] leave the transaction
/// usable (on PostgreSQL too: they are detected without a failing statement). After any other error the
/// transaction should be dropped.
pub trait StoreTx: Send {
    /// Commit durably: when this returns `Ok`, the changes survive a crash (SQLite `synchronous=FULL`, possibly
    /// as part of a group commit; PostgreSQL per its `synchronous_commit`).
    fn commit(self) -> impl Future<Output = Result<()>> + Send;

    /// A case by id, as this transaction sees it.
    fn get_case(&mut self, id: CaseId) -> impl Future<Output = Result<Option<CaseRecord>>> + Send;

    /// Insert (`expected_revision` `None`; [`Error::Conflict`] if the case exists) or update with optimistic
    /// concurrency (`Some(rev)`: [`Error::Conflict`] unless the stored revision equals `rev`, [`Error::NotFound`]
    /// if there is no such case). The stored revision becomes `rec.case.revision`.
    fn put_case(&mut self, rec: &CaseRecord, expected_revision: Option<u32>)
    -> impl Future<Output = Result<()>> + Send;

    /// The next outbound sequence number for (case, peer): 1, 2, 3 …
    fn next_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> impl Future<Output = Result<u64>> + Send;

    /// The last inbound sequence number applied for (case, peer); 0 if none. Locks (case, peer) until the
    /// transaction ends, so concurrent receivers for the same case and peer are serialised.
    fn last_in_sequence(&mut self, case: CaseId, peer: &OrgKey) -> impl Future<Output = Result<u64>> + Send;

    /// Record the last inbound sequence number applied for (case, peer).
    fn set_last_in_sequence(
        &mut self,
        case: CaseId,
        peer: &OrgKey,
        seq: u64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Store a message. A message id seen before (either direction) gives [`Error::Duplicate`] and changes
    /// nothing.
    fn insert_message(&mut self, rec: &MessageRecord) -> impl Future<Output = Result<()>> + Send;

    /// A message by id, as this transaction sees it.
    fn get_message(&mut self, id: MessageId) -> impl Future<Output = Result<Option<MessageRecord>>> + Send;

    /// Change a message's state ([`Error::NotFound`] if there is no such message).
    fn set_message_state(&mut self, id: MessageId, state: MessageState) -> impl Future<Output = Result<()>> + Send;

    /// Inbound messages from `peer` about `case` in state [`MessageState::Held`], by sequence number.
    fn held_messages(&mut self, case: CaseId, peer: &OrgKey)
    -> impl Future<Output = Result<Vec<MessageRecord>>> + Send;

    /// Queue a delivery (the transactional outbox). A second delivery for the same message gives
    /// [`Error::Duplicate`].
    fn enqueue(&mut self, d: &Delivery) -> impl Future<Output = Result<()>> + Send;

    /// Due pending deliveries (`next_attempt_at <= now`, lease expired), earliest first, at most `limit`,
    /// leased until `lease_until` so that another worker or process does not take them before then
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the single writer).
    fn claim_due(
        &mut self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// The peer's positive receipt arrived: the delivery becomes `Delivered` (at `receipt.received_at`), the
    /// message `Delivered`, and the receipt is stored as by [`StoreTx::put_receipt`]. [`Error::NotFound`] if
    /// there is no delivery for `id`.
    fn mark_delivered(&mut self, id: MessageId, receipt: &ReceiptRecord) -> impl Future<Output = Result<()>> + Send;

    /// An attempt failed: record `attempts`, the error and the next attempt time, and release the lease;
    /// `dead` makes delivery and message `Dead`. [`Error::NotFound`] if there is no delivery for `id`.
    fn mark_failed(
        &mut self,
        id: MessageId,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
        dead: bool,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Release every delivery lease (a node process starting: leases of a process that was killed would otherwise
    /// hold their deliveries until they run out). Returns how many were released. Should another process still
    /// be sending one of them, the message goes out twice, which the receiver answers with the same receipt.
    fn release_leases(&mut self) -> impl Future<Output = Result<u64>> + Send;

    /// Retry a dead letter: `Dead` → `Pending`, due at `now`, attempts kept; the message becomes `Pending`
    /// again. `false` if the delivery is not dead (or does not exist).
    fn retry_dead(&mut self, id: MessageId, now: Timestamp) -> impl Future<Output = Result<bool>> + Send;

    /// Store a receipt we sent or received. The first receipt stored per (message, direction) is kept as the
    /// proof; storing another one is not an error and changes nothing.
    fn put_receipt(&mut self, rec: &ReceiptRecord) -> impl Future<Output = Result<()>> + Send;

    /// The receipt for `for_message` in `direction`.
    fn get_receipt(
        &mut self,
        for_message: MessageId,
        direction: Direction,
    ) -> impl Future<Output = Result<Option<ReceiptRecord>>> + Send;

    /// Append an event to a case's timeline.
    fn add_event(&mut self, ev: &TimelineEvent) -> impl Future<Output = Result<()>> + Send;
}
