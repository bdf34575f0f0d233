#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::future::Future;

use sdx_model::{CaseId, ItemId, MessageId, OrgKey, Timestamp};

mod any;
pub mod error;
pub mod postgres;
mod postgres_queries;
mod queries;
pub mod record;
pub mod sqlite;
mod sqlite_queries;

pub use any::{AnyStore, AnyTx, open_any};
pub use error::{Error, Result};
pub use postgres::{PgStore, PgTx};
pub use record::{
    BlockedCase, CaseQuery, CaseRecord, Delivery, DeliveryState, DeliveryStats, Direction, EventKind, FeedCursor,
    FeedEvent, IdempotentResult, MAX_PAGE, MessageRecord, MessageState, NoticeRecord, OpenDeliveries, OurRole, Page,
    ReceiptRecord, StateEntry, TimelineEvent,
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

    /// Begin a write transaction whose loss in a crash costs nothing, such as claiming deliveries (their leases
    /// are released when a node starts anyway): its commit does not wait for the disk. A crash may undo it, never
    /// tear it, and a durable commit after it makes it durable too. SQLite: when no group is forming, it is a
    /// physical transaction of its own with `synchronous=OFF`, committed at once and alone (no `fsync`); when one
    /// is, it joins it and is as durable as the group. PostgreSQL: `synchronous_commit = off` for this
    /// transaction.
    fn begin_volatile(&self) -> impl Future<Output = Result<Self::Tx>> + Send;

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

    /// The open deliveries (pending and dead) per peer and the number of blocked cases.
    fn delivery_stats(&self) -> impl Future<Output = Result<DeliveryStats>> + Send;

    /// Cases whose outgoing messages wait behind a dead letter, oldest dead letter first, at most `limit` (capped
    /// at [`MAX_PAGE`]).
    fn list_blocked(&self, limit: u32) -> impl Future<Output = Result<Vec<BlockedCase>>> + Send;

    /// The change feed: the timeline events of every case committed after `after`, in commit order, at most
    /// `limit` (capped at [`MAX_PAGE`]). An event is returned only once no transaction that started before it
    /// can still commit, so a reader that continues from the last cursor it got never misses one.
    fn feed(&self, after: FeedCursor, limit: u32) -> impl Future<Output = Result<Vec<FeedEvent>>> + Send;

    /// A value connector `connector` keeps under `key`.
    fn connector_state(&self, connector: &str, key: &str) -> impl Future<Output = Result<Option<StateEntry>>> + Send;

    /// The service notices active at `now` (see [`NoticeRecord`]: not a resolution, not ended; those that start
    /// later included), ordered by start, origin and notice id, at most `limit` (capped at [`MAX_PAGE`]).
    fn active_notices(&self, now: Timestamp, limit: u32) -> impl Future<Output = Result<Vec<NoticeRecord>>> + Send;
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

    /// A case by id, as this transaction sees it, locked until the transaction ends (PostgreSQL `FOR UPDATE`;
    /// SQLite has one writer), so that changes of one case run one after the other.
    fn get_case(&mut self, id: CaseId) -> impl Future<Output = Result<Option<CaseRecord>>> + Send;

    /// Insert (`expected_revision` `None`; [`Error::Conflict`] if the case exists) or update with optimistic
    /// concurrency (`Some(rev)`: [`Error::Conflict`] unless the stored revision equals `rev`, [`Error::NotFound`]
    /// if there is no such case). The stored revision becomes `rec.case.revision`.
    fn put_case(&mut self, rec: &CaseRecord, expected_revision: Option<u32>)
    -> impl Future<Output = Result<()>> + Send;

    /// The next outbound sequence number for (case, peer): 1, 2, 3 …
    fn next_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> impl Future<Output = Result<u64>> + Send;

    /// The last outbound sequence number taken for (case, peer); 0 if none.
    fn last_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> impl Future<Output = Result<u64>> + Send;

    /// Set the last outbound sequence number for (case, peer) (after an operator skipped a dead letter, the
    /// messages behind it are renumbered).
    fn set_last_out_sequence(
        &mut self,
        case: CaseId,
        peer: &OrgKey,
        seq: u64,
    ) -> impl Future<Output = Result<()>> + Send;

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

    /// Change an inbound message's state (`Held` → `Applied` | `Refused`); [`Error::NotFound`] if there is no such
    /// inbound message. An outbound message changes state only together with its delivery (`mark_…`,
    /// `retry_dead`, `skip_dead`, `supersede`): the delivery is the one owner of that state.
    fn set_inbound_state(&mut self, id: MessageId, state: MessageState) -> impl Future<Output = Result<()>> + Send;

    /// Every message of a case, both directions, each peer's in sequence order — found through the case's timeline:
    /// the messages named by its `MessageSent` and `MessageReceived` events (the engine records one for every
    /// case message it stores), so that no index over all messages is needed.
    fn case_messages(&mut self, case: CaseId) -> impl Future<Output = Result<Vec<MessageRecord>>> + Send;

    /// Inbound messages from `peer` about `case` in state [`MessageState::Held`], by sequence number.
    fn held_messages(&mut self, case: CaseId, peer: &OrgKey)
    -> impl Future<Output = Result<Vec<MessageRecord>>> + Send;

    /// The delivery of an outbound message, if it has one.
    fn get_delivery(&mut self, id: MessageId) -> impl Future<Output = Result<Option<Delivery>>> + Send;

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

    /// The peer's positive receipt arrived: the delivery becomes `Delivered` (at `receipt.received_at`, its
    /// `last_error` cleared), the message `Delivered`, and the receipt is stored as by [`StoreTx::put_receipt`]. [`Error::NotFound`] if
    /// there is no delivery for `id`.
    fn mark_delivered(&mut self, id: MessageId, receipt: &ReceiptRecord) -> impl Future<Output = Result<()>> + Send;

    /// The peer's signed negative receipt arrived (it judged the message and refused it): delivery and message
    /// become `Rejected`, `error` is kept, and the receipt is stored as by [`StoreTx::put_receipt`]. A delivered or
    /// rejected delivery stays as it is; [`Error::NotFound`] if there is no delivery for `id`.
    fn mark_rejected(
        &mut self,
        id: MessageId,
        receipt: &ReceiptRecord,
        error: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// An attempt failed: record `attempts`, the error and the next attempt time, and release the lease;
    /// `dead` makes delivery and message `Dead`. Only a pending delivery changes (a failure report that comes after a
    /// receipt changes nothing); [`Error::NotFound`] if there is no delivery for `id`.
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

    /// Retry a dead letter: `Dead` → `Pending`, due at `now`; attempts and the age limit start afresh (`attempts`
    /// 0, `created_at` `now`); the message becomes `Pending` again. `false` if the delivery is not dead (or does
    /// not exist).
    fn retry_dead(&mut self, id: MessageId, now: Timestamp) -> impl Future<Output = Result<bool>> + Send;

    /// Skip a dead letter: delivery and message `Dead` → `Skipped`. `false` if it is not dead.
    fn skip_dead(&mut self, id: MessageId) -> impl Future<Output = Result<bool>> + Send;

    /// Supersede a pending message that is being replaced (renumbered): delivery and message `Pending` →
    /// `Superseded`. `false` if it is not pending.
    fn supersede(&mut self, id: MessageId) -> impl Future<Output = Result<bool>> + Send;

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

    /// Write (`Some`) or delete (`None`) the value connector `connector` keeps under `key`, if its version is
    /// `expected` (`Some(0)`: there is none; `None`: whatever it is), else [`Error::Conflict`]. Returns the new
    /// version (0 after a delete).
    fn put_connector_state(
        &mut self,
        connector: &str,
        key: &str,
        value: Option<&str>,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Store a version of a service notice if it is later than the one stored for (`origin`, notice id) by
    /// (`issued_at`, `message_id`) — see [`NoticeRecord`]. Returns whether it was stored; `false` (a version as
    /// late or later is stored: a duplicate or a version that arrived late) changes nothing.
    fn put_notice(&mut self, rec: &NoticeRecord) -> impl Future<Output = Result<bool>> + Send;

    /// The stored version of the notice `id` of `origin`, as this transaction sees it (locked until the
    /// transaction ends on PostgreSQL, so versions of one notice are made one after the other).
    fn get_notice(&mut self, origin: &OrgKey, id: ItemId) -> impl Future<Output = Result<Option<NoticeRecord>>> + Send;

    /// What the local change sent with idempotency key `key` produced, if one was committed.
    fn idempotent(&mut self, key: &str) -> impl Future<Output = Result<Option<IdempotentResult>>> + Send;

    /// Remember what the local change with idempotency key `key` produced ([`Error::Duplicate`] if the key is
    /// taken).
    fn put_idempotent(
        &mut self,
        key: &str,
        result: IdempotentResult,
        at: sdx_model::Timestamp,
    ) -> impl Future<Output = Result<()>> + Send;
}
