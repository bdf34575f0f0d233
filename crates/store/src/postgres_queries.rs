//! The shared SQL ([`crate::queries`]) run through `sqlx` on PostgreSQL: one async function per statement, and
//! the [`StoreTx`](crate::StoreTx) implementation of [`PgTx`](crate::postgres::PgTx) on top of them. (The SQLite
//! engine runs the same statements through `rusqlite`, see `sqlite_queries`.)

use sdx_model::{CaseId, Coded, MessageId, OrgKey, Timestamp};
use sqlx::Executor;

use crate::error::{Error, Result};
use crate::queries::{self as q, Bind};
use crate::record::{
    BlockedCase, CaseQuery, CaseRecord, Delivery, DeliveryState, DeliveryStats, Direction, FeedCursor, FeedEvent,
    IdempotentResult, MessageRecord, MessageState, Page, ReceiptRecord, StateEntry, TimelineEvent, ms, seq_from_db,
    seq_to_db,
};

type Conn = sqlx::PgConnection;
use crate::queries::{blocked_row, case_row, delivery_row, event_row, message_row, open_deliveries_row, receipt_row};

pub(crate) async fn get_case<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    id: CaseId,
) -> Result<Option<CaseRecord>> {
    let row = sqlx::query(q::GET_CASE).bind(id.to_string()).fetch_optional(e).await?;
    row.as_ref().map(case_row).transpose()
}

pub(crate) async fn query_cases<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    cq: &CaseQuery,
) -> Result<Page<CaseRecord>> {
    let (sql, binds) = q::case_query(cq)?;
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Bind::Int(v) => query.bind(v),
            Bind::Text(v) => query.bind(v),
        };
    }
    let rows = query.fetch_all(e).await?;
    let rows = rows.iter().map(q::case_row_with_key).collect::<Result<Vec<_>>>()?;
    Ok(q::case_page(rows, cq.page_size() as usize))
}

pub(crate) async fn timeline<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    id: CaseId,
) -> Result<Vec<TimelineEvent>> {
    let rows = sqlx::query(q::TIMELINE).bind(id.to_string()).fetch_all(e).await?;
    rows.iter().map(event_row).collect()
}

pub(crate) async fn get_message<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    id: MessageId,
) -> Result<Option<MessageRecord>> {
    let row = sqlx::query(q::GET_MESSAGE).bind(id.to_string()).fetch_optional(e).await?;
    row.as_ref().map(message_row).transpose()
}

pub(crate) async fn get_delivery<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    id: MessageId,
) -> Result<Option<Delivery>> {
    let row = sqlx::query(q::GET_DELIVERY).bind(id.to_string()).fetch_optional(e).await?;
    row.as_ref().map(delivery_row).transpose()
}

pub(crate) async fn list_deliveries<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    state: Option<DeliveryState>,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let limit = i64::from(limit.min(crate::record::MAX_PAGE));
    let rows = match state {
        Some(s) => sqlx::query(q::LIST_DELIVERIES).bind(s.as_str()).bind(limit).fetch_all(e).await?,
        None => sqlx::query(q::LIST_ALL_DELIVERIES).bind(limit).fetch_all(e).await?,
    };
    rows.iter().map(delivery_row).collect()
}

pub(crate) async fn put_case(c: &mut Conn, rec: &CaseRecord, expected: Option<u32>) -> Result<()> {
    let case = &rec.case;
    let leika = case.category.service.as_ref().and_then(|s| s.leika_key.as_ref()).map(|k| k.to_string());
    let query = sqlx::query(match expected {
        None => q::INSERT_CASE,
        Some(_) => q::UPDATE_CASE,
    })
    .bind(case.case_id.to_string())
    .bind(i64::from(case.revision))
    .bind(case.status.code())
    .bind(case.ticket_type.code())
    .bind(case.priority.code())
    .bind(leika)
    .bind(case.region.as_ref().map(|r| r.to_string()))
    .bind(rec.partner.as_str())
    .bind(rec.our_role.as_str())
    .bind(ms(&rec.updated_at))
    .bind(q::to_json(case)?)
    .bind(rec.owner.as_deref());
    let query = match expected {
        Some(rev) => query.bind(i64::from(rev)),
        None => query,
    };
    if query.execute(&mut *c).await?.rows_affected() == 1 {
        return Ok(());
    }
    match expected {
        None => Err(Error::Conflict),
        Some(_) => {
            let exists =
                sqlx::query(q::CASE_EXISTS).bind(case.case_id.to_string()).fetch_optional(&mut *c).await?.is_some();
            Err(if exists { Error::Conflict } else { Error::NotFound })
        }
    }
}

pub(crate) async fn next_out_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey) -> Result<u64> {
    let row = sqlx::query(q::NEXT_OUT).bind(case.to_string()).bind(peer.as_str()).fetch_one(&mut *c).await?;
    seq_from_db(q::RowGet::int(&row, "last_out")?)
}

/// A sequence number of (case, peer) read by `sql` from column `col`; 0 if there is no row.
async fn sequence(c: &mut Conn, sql: &'static str, col: &str, case: CaseId, peer: &OrgKey) -> Result<u64> {
    let row = sqlx::query(sql).bind(case.to_string()).bind(peer.as_str()).fetch_optional(&mut *c).await?;
    match row {
        Some(r) => seq_from_db(q::RowGet::int(&r, col)?),
        None => Ok(0),
    }
}

/// Set a sequence number of (case, peer) with `sql`.
async fn set_sequence(c: &mut Conn, sql: &'static str, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
    sqlx::query(sql).bind(case.to_string()).bind(peer.as_str()).bind(seq_to_db(seq)?).execute(&mut *c).await?;
    Ok(())
}

pub(crate) async fn last_in_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey) -> Result<u64> {
    sequence(c, q::LAST_IN, "last_in", case, peer).await
}

pub(crate) async fn set_last_in_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
    set_sequence(c, q::SET_LAST_IN, case, peer, seq).await
}

pub(crate) async fn insert_message(c: &mut Conn, m: &MessageRecord) -> Result<()> {
    let done = sqlx::query(q::INSERT_MESSAGE)
        .bind(m.message_id.to_string())
        .bind(m.case_id.map(|c| c.to_string()))
        .bind(m.direction.as_str())
        .bind(m.peer.as_str())
        .bind(m.message_type.code())
        .bind(m.sequence.map(seq_to_db).transpose()?)
        .bind(ms(&m.created_at))
        .bind(ms(&m.stored_at))
        .bind(m.jws.as_str())
        .bind(m.digest.as_str())
        .bind(m.state.as_str())
        .execute(&mut *c)
        .await?;
    if done.rows_affected() == 1 { Ok(()) } else { Err(Error::Duplicate) }
}

pub(crate) async fn set_inbound_state(c: &mut Conn, id: MessageId, state: MessageState) -> Result<()> {
    let done = sqlx::query(q::SET_INBOUND_STATE).bind(id.to_string()).bind(state.as_str()).execute(&mut *c).await?;
    if done.rows_affected() == 1 { Ok(()) } else { Err(Error::NotFound) }
}

pub(crate) async fn get_case_for_update(c: &mut Conn, id: CaseId) -> Result<Option<CaseRecord>> {
    let row = sqlx::query(q::GET_CASE_FOR_UPDATE).bind(id.to_string()).fetch_optional(&mut *c).await?;
    row.as_ref().map(case_row).transpose()
}

pub(crate) async fn last_out_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey) -> Result<u64> {
    sequence(c, q::LAST_OUT, "last_out", case, peer).await
}

pub(crate) async fn set_last_out_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
    set_sequence(c, q::SET_LAST_OUT, case, peer, seq).await
}

pub(crate) async fn case_messages(c: &mut Conn, case: CaseId) -> Result<Vec<MessageRecord>> {
    let rows = sqlx::query(q::CASE_MESSAGES).bind(case.to_string()).fetch_all(&mut *c).await?;
    rows.iter().map(message_row).collect()
}

pub(crate) async fn delivery_stats(pool: &sqlx::PgPool) -> Result<DeliveryStats> {
    let rows = sqlx::query(q::OPEN_DELIVERIES).fetch_all(pool).await?;
    let open = rows.iter().map(open_deliveries_row).collect::<Result<Vec<_>>>()?;
    let row = sqlx::query(q::BLOCKED_COUNT).fetch_one(pool).await?;
    let blocked = q::RowGet::int(&row, "n")?;
    Ok(DeliveryStats {
        open,
        blocked_cases: u64::try_from(blocked).map_err(|_| Error::Corrupt("negative count".into()))?,
    })
}

pub(crate) async fn list_blocked(pool: &sqlx::PgPool, limit: u32) -> Result<Vec<BlockedCase>> {
    let limit = i64::from(limit.min(crate::record::MAX_PAGE));
    let rows = sqlx::query(q::LIST_BLOCKED).bind(limit).fetch_all(pool).await?;
    rows.iter().map(blocked_row).collect()
}

pub(crate) async fn feed(pool: &sqlx::PgPool, after: FeedCursor, limit: u32) -> Result<Vec<FeedEvent>> {
    let limit = i64::from(limit.clamp(1, crate::record::MAX_PAGE));
    let rows =
        sqlx::query(q::FEED_POSTGRES).bind(after.xid.to_string()).bind(after.id).bind(limit).fetch_all(pool).await?;
    rows.iter().map(q::feed_row).collect()
}

pub(crate) async fn connector_state<'c, E: Executor<'c, Database = sqlx::Postgres>>(
    e: E,
    connector: &str,
    key: &str,
) -> Result<Option<StateEntry>> {
    let row = sqlx::query(q::GET_STATE).bind(connector).bind(key).fetch_optional(e).await?;
    row.as_ref()
        .map(|r| {
            Ok(StateEntry { value: q::RowGet::text(r, "value")?, version: seq_from_db(q::RowGet::int(r, "version")?)? })
        })
        .transpose()
}

async fn put_connector_state(
    c: &mut Conn,
    connector: &str,
    key: &str,
    value: Option<&str>,
    expected: Option<u64>,
) -> Result<u64> {
    let at = ms(&Timestamp::now());
    let version = |row: Option<sqlx::postgres::PgRow>| -> Result<u64> {
        let row = row.ok_or(Error::Conflict)?;
        seq_from_db(q::RowGet::int(&row, "version")?)
    };
    match (value, expected) {
        (None, None) => {
            sqlx::query(q::DELETE_STATE).bind(connector).bind(key).execute(&mut *c).await?;
            Ok(0)
        }
        (None, Some(v)) => {
            let n = sqlx::query(q::DELETE_STATE_IF).bind(connector).bind(key).bind(v as i64).execute(&mut *c).await?;
            if n.rows_affected() == 1 || (v == 0 && connector_state(&mut *c, connector, key).await?.is_none()) {
                Ok(0)
            } else {
                Err(Error::Conflict)
            }
        }
        (Some(val), Some(0)) => {
            let n = sqlx::query(q::INSERT_STATE).bind(connector).bind(key).bind(val).bind(at).execute(&mut *c).await?;
            if n.rows_affected() == 1 { Ok(1) } else { Err(Error::Conflict) }
        }
        (Some(val), Some(v)) => {
            let row = sqlx::query(q::UPDATE_STATE_IF)
                .bind(connector)
                .bind(key)
                .bind(val)
                .bind(at)
                .bind(v as i64)
                .fetch_optional(&mut *c)
                .await?;
            version(row)
        }
        (Some(val), None) => {
            let n = sqlx::query(q::INSERT_STATE).bind(connector).bind(key).bind(val).bind(at).execute(&mut *c).await?;
            if n.rows_affected() == 1 {
                return Ok(1);
            }
            let row = sqlx::query(q::UPDATE_STATE)
                .bind(connector)
                .bind(key)
                .bind(val)
                .bind(at)
                .fetch_optional(&mut *c)
                .await?;
            version(row)
        }
    }
}

/// Set an outbound message's state to go with its delivery's (the delivery statement changed `changed` rows).
async fn follow(c: &mut Conn, id: MessageId, changed: u64, state: MessageState) -> Result<bool> {
    if changed == 0 {
        return Ok(false);
    }
    sqlx::query(q::SET_MESSAGE_STATE).bind(id.to_string()).bind(state.as_str()).execute(&mut *c).await?;
    Ok(true)
}

pub(crate) async fn mark_rejected(c: &mut Conn, id: MessageId, receipt: &ReceiptRecord, error: &str) -> Result<()> {
    let changed = sqlx::query(q::REJECTED)
        .bind(id.to_string())
        .bind(ms(&receipt.received_at))
        .bind(error)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if !follow(c, id, changed, MessageState::Rejected).await? {
        // Already delivered or rejected (a receipt came twice): nothing to do.
        let exists = sqlx::query(q::DELIVERY_EXISTS).bind(id.to_string()).fetch_optional(&mut *c).await?.is_some();
        return if exists { Ok(()) } else { Err(Error::NotFound) };
    }
    put_receipt(c, receipt).await
}

pub(crate) async fn skip_dead(c: &mut Conn, id: MessageId) -> Result<bool> {
    let changed = sqlx::query(q::SKIP_DEAD).bind(id.to_string()).execute(&mut *c).await?.rows_affected();
    follow(c, id, changed, MessageState::Skipped).await
}

pub(crate) async fn supersede(c: &mut Conn, id: MessageId) -> Result<bool> {
    let changed = sqlx::query(q::SUPERSEDE).bind(id.to_string()).execute(&mut *c).await?.rows_affected();
    follow(c, id, changed, MessageState::Superseded).await
}

pub(crate) async fn held_messages(c: &mut Conn, case: CaseId, peer: &OrgKey) -> Result<Vec<MessageRecord>> {
    let rows = sqlx::query(q::HELD).bind(case.to_string()).bind(peer.as_str()).fetch_all(&mut *c).await?;
    rows.iter().map(message_row).collect()
}

pub(crate) async fn enqueue(c: &mut Conn, d: &Delivery) -> Result<()> {
    let done = sqlx::query(q::ENQUEUE)
        .bind(d.message_id.to_string())
        .bind(d.peer.as_str())
        .bind(d.state.as_str())
        .bind(i64::from(d.attempts))
        .bind(ms(&d.created_at))
        .bind(ms(&d.next_attempt_at))
        .bind(d.last_error.as_deref())
        .bind(d.delivered_at.as_ref().map(ms))
        .execute(&mut *c)
        .await?;
    if done.rows_affected() == 1 { Ok(()) } else { Err(Error::Duplicate) }
}

pub(crate) async fn claim_due(
    c: &mut Conn,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(q::CLAIM_POSTGRES)
        .bind(ms(&now))
        .bind(ms(&lease_until))
        .bind(i64::from(limit.min(crate::record::MAX_PAGE)))
        .fetch_all(&mut *c)
        .await?;
    let mut out = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
    // RETURNING does not keep the subquery's order.
    out.sort_by(|a, b| {
        (a.next_attempt_at, a.message_id.to_string()).cmp(&(b.next_attempt_at, b.message_id.to_string()))
    });
    Ok(out)
}

pub(crate) async fn mark_delivered(c: &mut Conn, id: MessageId, receipt: &ReceiptRecord) -> Result<()> {
    let done = sqlx::query(q::DELIVERED).bind(id.to_string()).bind(ms(&receipt.received_at)).execute(&mut *c).await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound);
    }
    sqlx::query(q::SET_MESSAGE_STATE)
        .bind(id.to_string())
        .bind(MessageState::Delivered.as_str())
        .execute(&mut *c)
        .await?;
    put_receipt(c, receipt).await
}

pub(crate) async fn mark_failed(
    c: &mut Conn,
    id: MessageId,
    attempts: u32,
    next_attempt_at: Timestamp,
    error: &str,
    dead: bool,
) -> Result<()> {
    let state = if dead { DeliveryState::Dead } else { DeliveryState::Pending };
    let done = sqlx::query(q::FAILED)
        .bind(id.to_string())
        .bind(i64::from(attempts))
        .bind(ms(&next_attempt_at))
        .bind(error)
        .bind(state.as_str())
        .execute(&mut *c)
        .await?;
    if done.rows_affected() == 0 {
        // No longer pending (a receipt overtook the failure report): nothing to do.
        let exists = sqlx::query(q::DELIVERY_EXISTS).bind(id.to_string()).fetch_optional(&mut *c).await?.is_some();
        return if exists { Ok(()) } else { Err(Error::NotFound) };
    }
    if dead {
        sqlx::query(q::SET_MESSAGE_STATE)
            .bind(id.to_string())
            .bind(MessageState::Dead.as_str())
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

pub(crate) async fn release_leases(c: &mut Conn) -> Result<u64> {
    Ok(sqlx::query(q::RELEASE_LEASES).execute(&mut *c).await?.rows_affected())
}

pub(crate) async fn retry_dead(c: &mut Conn, id: MessageId, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(q::RETRY_DEAD).bind(id.to_string()).bind(ms(&now)).execute(&mut *c).await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(q::SET_MESSAGE_STATE)
        .bind(id.to_string())
        .bind(MessageState::Pending.as_str())
        .execute(&mut *c)
        .await?;
    Ok(true)
}

pub(crate) async fn put_receipt(c: &mut Conn, r: &ReceiptRecord) -> Result<()> {
    sqlx::query(q::PUT_RECEIPT)
        .bind(r.for_message.to_string())
        .bind(r.direction.as_str())
        .bind(r.result.code())
        .bind(r.jws.as_str())
        .bind(ms(&r.received_at))
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(crate) async fn get_receipt(
    c: &mut Conn,
    for_message: MessageId,
    direction: Direction,
) -> Result<Option<ReceiptRecord>> {
    let row = sqlx::query(q::GET_RECEIPT)
        .bind(for_message.to_string())
        .bind(direction.as_str())
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(receipt_row).transpose()
}

pub(crate) async fn add_event(c: &mut Conn, ev: &TimelineEvent) -> Result<()> {
    sqlx::query(q::ADD_EVENT)
        .bind(ev.case_id.to_string())
        .bind(ms(&ev.at))
        .bind(ev.kind.as_str())
        .bind(ev.message_id.map(|m| m.to_string()))
        .bind(ev.detail.as_str())
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(crate) async fn active_notices(
    pool: &sqlx::PgPool,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<crate::record::NoticeRecord>> {
    let limit = i64::from(limit.clamp(1, crate::record::MAX_PAGE));
    let rows = sqlx::query(q::ACTIVE_NOTICES).bind(ms(&now)).bind(limit).fetch_all(pool).await?;
    rows.iter().map(q::notice_row).collect()
}

async fn put_notice(c: &mut Conn, rec: &crate::record::NoticeRecord) -> Result<bool> {
    let b = q::notice_binds(rec)?;
    let n = sqlx::query(q::PUT_NOTICE)
        .bind(b.origin)
        .bind(b.notice_id)
        .bind(b.notice_type)
        .bind(b.starts_at)
        .bind(b.ends_at)
        .bind(b.issued_at)
        .bind(b.message_id)
        .bind(b.received_at)
        .bind(b.doc)
        .execute(&mut *c)
        .await?;
    Ok(n.rows_affected() == 1)
}

impl crate::StoreTx for crate::postgres::PgTx {
    async fn commit(self) -> Result<()> {
        self.finish().await
    }
    async fn get_case(&mut self, id: CaseId) -> Result<Option<CaseRecord>> {
        get_case_for_update(self.conn()?, id).await
    }
    async fn put_case(&mut self, rec: &CaseRecord, expected_revision: Option<u32>) -> Result<()> {
        put_case(self.conn()?, rec, expected_revision).await
    }
    async fn next_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> Result<u64> {
        next_out_sequence(self.conn()?, case, peer).await
    }
    async fn last_in_sequence(&mut self, case: CaseId, peer: &OrgKey) -> Result<u64> {
        last_in_sequence(self.conn()?, case, peer).await
    }
    async fn set_last_in_sequence(&mut self, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
        set_last_in_sequence(self.conn()?, case, peer, seq).await
    }
    async fn insert_message(&mut self, rec: &MessageRecord) -> Result<()> {
        insert_message(self.conn()?, rec).await
    }
    async fn get_message(&mut self, id: MessageId) -> Result<Option<MessageRecord>> {
        get_message(self.conn()?, id).await
    }
    async fn get_delivery(&mut self, id: MessageId) -> Result<Option<Delivery>> {
        get_delivery(self.conn()?, id).await
    }
    async fn set_inbound_state(&mut self, id: MessageId, state: MessageState) -> Result<()> {
        set_inbound_state(self.conn()?, id, state).await
    }
    async fn case_messages(&mut self, case: CaseId) -> Result<Vec<MessageRecord>> {
        case_messages(self.conn()?, case).await
    }
    async fn last_out_sequence(&mut self, case: CaseId, peer: &OrgKey) -> Result<u64> {
        last_out_sequence(self.conn()?, case, peer).await
    }
    async fn set_last_out_sequence(&mut self, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
        set_last_out_sequence(self.conn()?, case, peer, seq).await
    }
    async fn mark_rejected(&mut self, id: MessageId, receipt: &ReceiptRecord, error: &str) -> Result<()> {
        mark_rejected(self.conn()?, id, receipt, error).await
    }
    async fn skip_dead(&mut self, id: MessageId) -> Result<bool> {
        skip_dead(self.conn()?, id).await
    }
    async fn supersede(&mut self, id: MessageId) -> Result<bool> {
        supersede(self.conn()?, id).await
    }
    async fn held_messages(&mut self, case: CaseId, peer: &OrgKey) -> Result<Vec<MessageRecord>> {
        held_messages(self.conn()?, case, peer).await
    }
    async fn enqueue(&mut self, d: &Delivery) -> Result<()> {
        enqueue(self.conn()?, d).await
    }
    async fn claim_due(&mut self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
        claim_due(self.conn()?, now, lease_until, limit).await
    }
    async fn mark_delivered(&mut self, id: MessageId, receipt: &ReceiptRecord) -> Result<()> {
        mark_delivered(self.conn()?, id, receipt).await
    }
    async fn mark_failed(
        &mut self,
        id: MessageId,
        attempts: u32,
        next_attempt_at: Timestamp,
        error: &str,
        dead: bool,
    ) -> Result<()> {
        mark_failed(self.conn()?, id, attempts, next_attempt_at, error, dead).await
    }
    async fn release_leases(&mut self) -> Result<u64> {
        release_leases(self.conn()?).await
    }
    async fn retry_dead(&mut self, id: MessageId, now: Timestamp) -> Result<bool> {
        retry_dead(self.conn()?, id, now).await
    }
    async fn put_receipt(&mut self, rec: &ReceiptRecord) -> Result<()> {
        put_receipt(self.conn()?, rec).await
    }
    async fn get_receipt(&mut self, for_message: MessageId, direction: Direction) -> Result<Option<ReceiptRecord>> {
        get_receipt(self.conn()?, for_message, direction).await
    }
    async fn add_event(&mut self, ev: &TimelineEvent) -> Result<()> {
        add_event(self.conn()?, ev).await
    }
    async fn put_connector_state(
        &mut self,
        connector: &str,
        key: &str,
        value: Option<&str>,
        expected: Option<u64>,
    ) -> Result<u64> {
        put_connector_state(self.conn()?, connector, key, value, expected).await
    }
    async fn put_notice(&mut self, rec: &crate::record::NoticeRecord) -> Result<bool> {
        put_notice(self.conn()?, rec).await
    }
    async fn get_notice(
        &mut self,
        origin: &OrgKey,
        id: sdx_model::ItemId,
    ) -> Result<Option<crate::record::NoticeRecord>> {
        let row = sqlx::query(q::GET_NOTICE_FOR_UPDATE)
            .bind(origin.as_str())
            .bind(id.to_string())
            .fetch_optional(&mut *self.conn()?)
            .await?;
        row.as_ref().map(q::notice_row).transpose()
    }
    async fn idempotent(&mut self, key: &str) -> Result<Option<IdempotentResult>> {
        let row = sqlx::query(q::GET_IDEMPOTENT).bind(key).fetch_optional(&mut *self.conn()?).await?;
        row.as_ref().map(q::idempotent_row).transpose()
    }
    async fn put_idempotent(&mut self, key: &str, result: IdempotentResult, at: Timestamp) -> Result<()> {
        let n = sqlx::query(q::PUT_IDEMPOTENT)
            .bind(key)
            .bind(result.case_id.to_string())
            .bind(result.message_id.to_string())
            .bind(ms(&at))
            .execute(&mut *self.conn()?)
            .await?;
        if n.rows_affected() == 1 { Ok(()) } else { Err(Error::Duplicate) }
    }
}
