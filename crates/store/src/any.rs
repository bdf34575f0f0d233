//! [`AnyStore`]: the engine chosen by the URL at run time, for callers that are not generic over [`Store`].

use sdx_model::{CaseId, MessageId, OrgKey, Timestamp};

use crate::error::{Error, Result};
use crate::postgres::{PgStore, PgTx};
use crate::record::{
    BlockedCase, CaseQuery, CaseRecord, Delivery, DeliveryState, DeliveryStats, Direction, FeedCursor, FeedEvent,
    IdempotentResult, MessageRecord, MessageState, NoticeRecord, Page, ReceiptRecord, StateEntry, TimelineEvent,
};
use crate::sqlite::{SqliteStore, SqliteTx};
use crate::{Store, StoreTx};

/// One of the engines, chosen by [`open_any`].
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

/// A transaction of an [`AnyStore`].
#[derive(Debug)]
pub enum AnyTx {
    /// SQLite.
    Sqlite(SqliteTx),
    /// PostgreSQL.
    Postgres(PgTx),
}

/// Open the engine the URL names: `sqlite:…` (the schema must be absent) or `postgres://…`/`postgresql://…`
/// (in `schema` if given).
pub async fn open_any(url: &str, schema: Option<&str>) -> Result<AnyStore> {
    if url.starts_with("sqlite:") {
        if schema.is_some() {
            return Err(Error::Invalid("a SQLite database has no schemas; use one file per node".into()));
        }
        Ok(AnyStore::Sqlite(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(AnyStore::Postgres(PgStore::open(url, schema).await?))
    } else {
        Err(Error::Invalid("storage URL must start with sqlite: or postgres://".into()))
    }
}

impl AnyStore {
    /// Close all connections.
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(s) => s.close().await,
        }
    }

    /// Commit counters (SQLite only: PostgreSQL groups commits inside the server).
    pub fn commit_stats(&self) -> Option<crate::sqlite::CommitStats> {
        match self {
            AnyStore::Sqlite(s) => Some(s.commit_stats()),
            AnyStore::Postgres(_) => None,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

macro_rules! delegate {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

macro_rules! delegate_tx {
    ($self:expr, $t:ident => $call:expr) => {
        match $self {
            AnyTx::Sqlite($t) => $call.await,
            AnyTx::Postgres($t) => $call.await,
        }
    };
}

impl Store for AnyStore {
    type Tx = AnyTx;

    async fn begin(&self) -> Result<AnyTx> {
        match self {
            AnyStore::Sqlite(s) => Ok(AnyTx::Sqlite(s.begin().await?)),
            AnyStore::Postgres(s) => Ok(AnyTx::Postgres(s.begin().await?)),
        }
    }
    async fn begin_volatile(&self) -> Result<AnyTx> {
        match self {
            AnyStore::Sqlite(s) => Ok(AnyTx::Sqlite(s.begin_volatile().await?)),
            AnyStore::Postgres(s) => Ok(AnyTx::Postgres(s.begin_volatile().await?)),
        }
    }
    async fn get_case(&self, id: CaseId) -> Result<Option<CaseRecord>> {
        delegate!(self, s => s.get_case(id))
    }
    async fn query_cases(&self, q: &CaseQuery) -> Result<Page<CaseRecord>> {
        delegate!(self, s => s.query_cases(q))
    }
    async fn timeline(&self, id: CaseId) -> Result<Vec<TimelineEvent>> {
        delegate!(self, s => s.timeline(id))
    }
    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>> {
        delegate!(self, s => Store::get_message(s, id))
    }
    async fn list_deliveries(&self, state: Option<DeliveryState>, limit: u32) -> Result<Vec<Delivery>> {
        delegate!(self, s => s.list_deliveries(state, limit))
    }
    async fn delivery_stats(&self) -> Result<DeliveryStats> {
        delegate!(self, s => s.delivery_stats())
    }
    async fn list_blocked(&self, limit: u32) -> Result<Vec<BlockedCase>> {
        delegate!(self, s => s.list_blocked(limit))
    }
    async fn feed(&self, after: FeedCursor, limit: u32) -> Result<Vec<FeedEvent>> {
        delegate!(self, s => s.feed(after, limit))
    }
    async fn connector_state(&self, connector: &str, key: &str) -> Result<Option<StateEntry>> {
        delegate!(self, s => s.connector_state(connector, key))
    }
    async fn active_notices(&self, now: Timestamp, limit: u32) -> Result<Vec<NoticeRecord>> {
        delegate!(self, s => s.active_notices(now, limit))
    }
}

impl StoreTx for AnyTx {
    async fn commit(self) -> Result<()> {
        delegate_tx!(self, t => t.commit())
    }
    async fn get_case(&mut self, id: CaseId) -> Result<Option<CaseRecord>> {
        delegate_tx!(self, t => t.get_case(id))
    }
    async fn put_case(&mut self, rec: &CaseRecord, expected_revision: Option<u32>) -> Result<()> {
        delegate_tx!(self, t => t.put_case(rec, expected_revision))
    }
    async fn next_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> Result<u64> {
        delegate_tx!(self, t => t.next_out_sequence(case, peer))
    }
    async fn last_in_sequence(&mut self, case: CaseId, peer: &OrgKey) -> Result<u64> {
        delegate_tx!(self, t => t.last_in_sequence(case, peer))
    }
    async fn set_last_in_sequence(&mut self, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
        delegate_tx!(self, t => t.set_last_in_sequence(case, peer, seq))
    }
    async fn insert_message(&mut self, rec: &MessageRecord) -> Result<()> {
        delegate_tx!(self, t => t.insert_message(rec))
    }
    async fn get_message(&mut self, id: MessageId) -> Result<Option<MessageRecord>> {
        delegate_tx!(self, t => t.get_message(id))
    }
    async fn get_delivery(&mut self, id: MessageId) -> Result<Option<Delivery>> {
        delegate_tx!(self, t => t.get_delivery(id))
    }
    async fn set_inbound_state(&mut self, id: MessageId, state: MessageState) -> Result<()> {
        delegate_tx!(self, t => t.set_inbound_state(id, state))
    }
    async fn case_messages(&mut self, case: CaseId) -> Result<Vec<MessageRecord>> {
        delegate_tx!(self, t => t.case_messages(case))
    }
    async fn last_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> Result<u64> {
        delegate_tx!(self, t => t.last_out_sequence(case, peer))
    }
    async fn set_last_out_sequence(&mut self, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
        delegate_tx!(self, t => t.set_last_out_sequence(case, peer, seq))
    }
    async fn mark_rejected(&mut self, id: MessageId, receipt: &ReceiptRecord, error: &str) -> Result<()> {
        delegate_tx!(self, t => t.mark_rejected(id, receipt, error))
    }
    async fn skip_dead(&mut self, id: MessageId) -> Result<bool> {
        delegate_tx!(self, t => t.skip_dead(id))
    }
    async fn supersede(&mut self, id: MessageId) -> Result<bool> {
        delegate_tx!(self, t => t.supersede(id))
    }
    async fn held_messages(&mut self, case: CaseId, peer: &OrgKey) -> Result<Vec<MessageRecord>> {
        delegate_tx!(self, t => t.held_messages(case, peer))
    }
    async fn enqueue(&mut self, d: &Delivery) -> Result<()> {
        delegate_tx!(self, t => t.enqueue(d))
    }
    async fn claim_due(&mut self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
        delegate_tx!(self, t => t.claim_due(now, lease_until, limit))
    }
    async fn mark_delivered(&mut self, id: MessageId, receipt: &ReceiptRecord) -> Result<()> {
        delegate_tx!(self, t => t.mark_delivered(id, receipt))
    }
    async fn mark_failed(
        &mut self,
        id: MessageId,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
        dead: bool,
    ) -> Result<()> {
        delegate_tx!(self, t => t.mark_failed(id, attempts, next_attempt_at, error, dead))
    }
    async fn release_leases(&mut self) -> Result<u64> {
        delegate_tx!(self, t => t.release_leases())
    }
    async fn retry_dead(&mut self, id: MessageId, now: Timestamp) -> Result<bool> {
        delegate_tx!(self, t => t.retry_dead(id, now))
    }
    async fn put_receipt(&mut self, rec: &ReceiptRecord) -> Result<()> {
        delegate_tx!(self, t => t.put_receipt(rec))
    }
    async fn get_receipt(&mut self, for_message: MessageId, direction: Direction) -> Result<Option<ReceiptRecord>> {
        delegate_tx!(self, t => t.get_receipt(for_message, direction))
    }
    async fn add_event(&mut self, ev: &TimelineEvent) -> Result<()> {
        delegate_tx!(self, t => t.add_event(ev))
    }
    async fn put_connector_state(
        &mut self,
        connector: &str,
        key: &str,
        value: Option<&str>,
        expected: Option<u64>,
    ) -> Result<u64> {
        delegate_tx!(self, t => t.put_connector_state(connector, key, value, expected))
    }
    async fn put_notice(&mut self, rec: &NoticeRecord) -> Result<bool> {
        delegate_tx!(self, t => t.put_notice(rec))
    }
    async fn get_notice(&mut self, origin: &OrgKey, id: sdx_model::ItemId) -> Result<Option<NoticeRecord>> {
        delegate_tx!(self, t => t.get_notice(origin, id))
    }
    async fn idempotent(&mut self, key: &str) -> Result<Option<IdempotentResult>> {
        delegate_tx!(self, t => t.idempotent(key))
    }
    async fn put_idempotent(&mut self, key: &str, result: IdempotentResult, at: Timestamp) -> Result<()> {
        delegate_tx!(self, t => t.put_idempotent(key, result, at))
    }
}
