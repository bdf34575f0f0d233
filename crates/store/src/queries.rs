//! The SQL both engines share, and the code that binds it and decodes rows.
//!
//! Both engines understand the same statements: numbered parameters (`$1`), `INSERT … ON CONFLICT DO NOTHING`,
//! upserts with `RETURNING`, row-value comparisons and partial indexes. The code that runs them differs only
//! in the `sqlx` database type, so it is written once as a macro ([`shared_queries!`]) and expanded in
//! `sqlite.rs` and `postgres.rs` with that type; each engine passes its own statement where they differ
//! (claiming deliveries). Everything engine-independent (building the case query, encoding values) is a plain
//! function here.

use sdx_model::{CaseId, Coded, MessageId, OrgKey, Status};

use crate::error::{Error, Result};
use crate::record::{
    CaseQuery, CaseRecord, Cursor, Delivery, DeliveryState, Direction, EventKind, MessageRecord, MessageState, OurRole,
    Page, ReceiptRecord, TimelineEvent, from_ms, ms, parse_id, seq_from_db,
};

pub(crate) const CASE_COLS: &str = "doc, partner, our_role, updated_at, case_id";
pub(crate) const GET_CASE: &str = "SELECT doc, partner, our_role, updated_at, case_id FROM cases WHERE case_id = $1";
pub(crate) const CASE_EXISTS: &str = "SELECT case_id FROM cases WHERE case_id = $1";
pub(crate) const INSERT_CASE: &str = "INSERT INTO cases \
    (case_id, revision, status, ticket_type, priority, leika_key, region, partner, our_role, updated_at, doc) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (case_id) DO NOTHING";
pub(crate) const UPDATE_CASE: &str = "UPDATE cases SET revision = $2, status = $3, ticket_type = $4, priority = $5, \
    leika_key = $6, region = $7, partner = $8, our_role = $9, updated_at = $10, doc = $11 \
    WHERE case_id = $1 AND revision = $12";

pub(crate) const NEXT_OUT: &str = "INSERT INTO sequences (case_id, peer, last_out, last_in) VALUES ($1, $2, 1, 0) \
    ON CONFLICT (case_id, peer) DO UPDATE SET last_out = sequences.last_out + 1 RETURNING last_out";
/// Reads `last_in` *and locks the row* (an upsert that changes nothing takes the row lock on PostgreSQL; SQLite
/// serialises writers anyway), so two transactions receiving for the same case and peer run one after the other:
/// the second sees the first's sequence, and an early message is never left held behind a gap that was filled.
pub(crate) const LAST_IN: &str = "INSERT INTO sequences (case_id, peer, last_out, last_in) VALUES ($1, $2, 0, 0) \
    ON CONFLICT (case_id, peer) DO UPDATE SET last_in = sequences.last_in RETURNING last_in";
pub(crate) const SET_LAST_IN: &str = "INSERT INTO sequences (case_id, peer, last_out, last_in) VALUES ($1, $2, 0, $3) \
    ON CONFLICT (case_id, peer) DO UPDATE SET last_in = excluded.last_in";

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (message_id, case_id, direction, peer, message_type, sequence, created_at, stored_at, jws, digest, state) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (message_id) DO NOTHING";
pub(crate) const GET_MESSAGE: &str = "SELECT message_id, case_id, direction, peer, message_type, sequence, \
    created_at, stored_at, jws, digest, state FROM messages WHERE message_id = $1";
pub(crate) const SET_MESSAGE_STATE: &str = "UPDATE messages SET state = $2 WHERE message_id = $1";
pub(crate) const HELD: &str = "SELECT message_id, case_id, direction, peer, message_type, sequence, \
    created_at, stored_at, jws, digest, state FROM messages \
    WHERE case_id = $1 AND peer = $2 AND direction = 'in' AND state = 'held' ORDER BY sequence, message_id";

pub(crate) const ENQUEUE: &str = "INSERT INTO deliveries \
    (message_id, peer, state, attempts, created_at, next_attempt_at, lease_until, last_error, delivered_at) \
    VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8) ON CONFLICT (message_id) DO NOTHING";
/// The claimable deliveries: pending, due, not leased, and no earlier message of the same case to the same peer
/// still undelivered (so a case's messages reach the peer one after the other, in sequence order). `$1` now.
macro_rules! claimable {
    () => {
        "SELECT d.message_id FROM deliveries d \
    WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 AND NOT EXISTS (\
    SELECT 1 FROM messages m JOIN messages e ON e.case_id = m.case_id AND e.peer = m.peer \
    AND e.direction = 'out' AND e.state = 'pending' AND e.sequence < m.sequence \
    WHERE m.message_id = d.message_id) \
    ORDER BY d.next_attempt_at, d.message_id LIMIT $3"
    };
}
/// Claim for SQLite (the single writer serializes claims). `$1` now, `$2` lease end, `$3` limit.
pub(crate) const CLAIM_SQLITE: &str = concat!(
    "UPDATE deliveries SET lease_until = $2 WHERE message_id IN (",
    claimable!(),
    ") RETURNING message_id, peer, state, attempts, created_at, next_attempt_at, last_error, delivered_at"
);
/// Claim for PostgreSQL: rows another transaction is claiming are skipped, not waited for.
pub(crate) const CLAIM_POSTGRES: &str = concat!(
    "UPDATE deliveries SET lease_until = $2 WHERE message_id IN (",
    claimable!(),
    " FOR UPDATE OF d SKIP LOCKED) \
    RETURNING message_id, peer, state, attempts, created_at, next_attempt_at, last_error, delivered_at"
);
pub(crate) const DELIVERED: &str = "UPDATE deliveries SET state = 'delivered', \
    delivered_at = COALESCE(delivered_at, $2), lease_until = 0 WHERE message_id = $1";
pub(crate) const FAILED: &str = "UPDATE deliveries SET attempts = $2, next_attempt_at = $3, last_error = $4, \
    state = $5, lease_until = 0 WHERE message_id = $1 AND state <> 'delivered'";
pub(crate) const RELEASE_LEASES: &str = "UPDATE deliveries SET lease_until = 0 WHERE lease_until <> 0";
pub(crate) const DELIVERY_EXISTS: &str = "SELECT message_id FROM deliveries WHERE message_id = $1";
pub(crate) const RETRY_DEAD: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = $2, lease_until = 0 \
    WHERE message_id = $1 AND state = 'dead'";
pub(crate) const LIST_DELIVERIES: &str = "SELECT message_id, peer, state, attempts, created_at, next_attempt_at, \
    last_error, delivered_at FROM deliveries WHERE state = $1 ORDER BY created_at, message_id LIMIT $2";
/// All states: one ordered, limited branch per state (each uses `deliveries_by_state`), merged.
pub(crate) const LIST_ALL_DELIVERIES: &str = "SELECT * FROM (\
    SELECT message_id, peer, state, attempts, created_at, next_attempt_at, last_error, delivered_at \
    FROM deliveries WHERE state = 'pending' ORDER BY created_at, message_id LIMIT $1) AS p UNION ALL \
    SELECT * FROM (\
    SELECT message_id, peer, state, attempts, created_at, next_attempt_at, last_error, delivered_at \
    FROM deliveries WHERE state = 'delivered' ORDER BY created_at, message_id LIMIT $1) AS d UNION ALL \
    SELECT * FROM (\
    SELECT message_id, peer, state, attempts, created_at, next_attempt_at, last_error, delivered_at \
    FROM deliveries WHERE state = 'dead' ORDER BY created_at, message_id LIMIT $1) AS x \
    ORDER BY created_at, message_id LIMIT $1";

pub(crate) const PUT_RECEIPT: &str = "INSERT INTO receipts (for_message, direction, result, jws, received_at) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (for_message, direction) DO NOTHING";
pub(crate) const GET_RECEIPT: &str = "SELECT for_message, direction, result, jws, received_at FROM receipts \
    WHERE for_message = $1 AND direction = $2";

pub(crate) const ADD_EVENT: &str =
    "INSERT INTO events (case_id, at, kind, message_id, detail) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const TIMELINE: &str =
    "SELECT case_id, at, kind, message_id, detail FROM events WHERE case_id = $1 ORDER BY at, id";

/// A value bound to a dynamically built statement.
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// The statement and parameters for a case query (fetching one row more than the page to see if another page
/// follows).
///
/// With several statuses, each status gets its own ordered and limited branch and the branches are merged
/// (`UNION ALL … ORDER BY … LIMIT`): every branch can walk `cases_by_status` in order and stop after one page,
/// so the cost does not grow with the number of matching cases, as a single `status IN (…)` would (read all
/// matches, then sort).
pub(crate) fn case_query(q: &CaseQuery) -> Result<(String, Vec<Bind>)> {
    let mut binds = Vec::new();
    let param = |b: Bind, binds: &mut Vec<Bind>| {
        binds.push(b);
        format!("${}", binds.len())
    };
    let mut conds: Vec<String> = Vec::new();
    if let Some(t) = q.ticket_type {
        conds.push(format!("ticket_type = {}", param(Bind::Text(t.code().into()), &mut binds)));
    }
    if let Some(p) = q.priority {
        conds.push(format!("priority = {}", param(Bind::Text(p.code().into()), &mut binds)));
    }
    if let Some(k) = &q.leika_key {
        conds.push(format!("leika_key = {}", param(Bind::Text(k.to_string()), &mut binds)));
    }
    if let Some(r) = &q.region_prefix {
        if r.as_str().len() == 12 {
            // A full ARS is its own only extension: equality keeps `cases_by_region` in paging order.
            conds.push(format!("region = {}", param(Bind::Text(r.to_string()), &mut binds)));
        } else {
            // ARS are digits: every code starting with the prefix lies in [prefix, prefix + ':') (':' follows
            // '9'). A range is not in paging order: the matches are sorted.
            let lo = param(Bind::Text(r.to_string()), &mut binds);
            let hi = param(Bind::Text(format!("{r}:")), &mut binds);
            conds.push(format!("region >= {lo} AND region < {hi}"));
        }
    }
    if let Some(p) = &q.partner {
        conds.push(format!("partner = {}", param(Bind::Text(p.to_string()), &mut binds)));
    }
    if let Some(t) = &q.updated_since {
        conds.push(format!("updated_at >= {}", param(Bind::Int(ms(t)), &mut binds)));
    }
    if let Some(c) = &q.cursor {
        let c = Cursor::decode(c)?;
        let a = param(Bind::Int(c.updated_ms), &mut binds);
        let b = param(Bind::Text(c.case_id), &mut binds);
        conds.push(format!("(updated_at, case_id) > ({a}, {b})"));
    }
    let limit = param(Bind::Int(i64::from(q.page_size()) + 1), &mut binds);
    let order = format!("ORDER BY updated_at, case_id LIMIT {limit}");
    let mut statuses: Vec<Status> = Vec::new();
    for s in &q.status {
        if !statuses.contains(s) {
            statuses.push(*s);
        }
    }
    let select = |extra: Option<String>, conds: &[String]| {
        let all: Vec<&str> = extra.iter().map(String::as_str).chain(conds.iter().map(String::as_str)).collect();
        let mut sql = format!("SELECT {CASE_COLS} FROM cases");
        if !all.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&all.join(" AND "));
        }
        sql
    };
    let sql = match statuses.as_slice() {
        [] => format!("{} {order}", select(None, &conds)),
        [one] => {
            let p = param(Bind::Text(one.code().into()), &mut binds);
            format!("{} {order}", select(Some(format!("status = {p}")), &conds))
        }
        many => {
            let branches: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let p = param(Bind::Text(s.code().into()), &mut binds);
                    format!("SELECT * FROM ({} {order}) AS s{i}", select(Some(format!("status = {p}")), &conds))
                })
                .collect();
            format!("{} {order}", branches.join(" UNION ALL "))
        }
    };
    Ok((sql, binds))
}

pub(crate) fn to_json(case: &sdx_model::Case) -> Result<String> {
    serde_json::to_string(case).map_err(|e| Error::Invalid(format!("case does not serialize: {e}")))
}

/// Reading the columns of a result row, whatever the driver.
pub(crate) trait RowGet {
    /// A non-null text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// A non-null integer column.
    fn int(&self, col: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
}

impl RowGet for sqlx::postgres::PgRow {
    fn text(&self, col: &str) -> Result<String> {
        Ok(sqlx::Row::try_get::<String, _>(self, col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(sqlx::Row::try_get::<Option<String>, _>(self, col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(sqlx::Row::try_get::<i64, _>(self, col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(sqlx::Row::try_get::<Option<i64>, _>(self, col)?)
    }
}

impl RowGet for rusqlite::Row<'_> {
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.get::<_, String>(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.get::<_, Option<String>>(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.get::<_, i64>(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.get::<_, Option<i64>>(col)?)
    }
}

fn u32_of(r: &impl RowGet, col: &str) -> Result<u32> {
    let v = r.int(col)?;
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("{col} {v} out of range")))
}

pub(crate) fn case_row(r: &impl RowGet) -> Result<CaseRecord> {
    let doc = r.text("doc")?;
    let case = serde_json::from_str(&doc).map_err(|e| Error::Corrupt(format!("stored case: {e}")))?;
    Ok(CaseRecord {
        case,
        partner: parse_id("partner", &r.text("partner")?, |s: &str| OrgKey::parse(s))?,
        our_role: OurRole::decode(&r.text("our_role")?)?,
        updated_at: from_ms(r.int("updated_at")?)?,
    })
}

/// A row of a case query: the record and its paging key.
pub(crate) fn case_row_with_key(r: &impl RowGet) -> Result<(CaseRecord, Cursor)> {
    Ok((case_row(r)?, Cursor { updated_ms: r.int("updated_at")?, case_id: r.text("case_id")? }))
}

/// One page from the rows of a case query (which fetches one row more than the page, to see whether another
/// page follows): the cursor is the key of the page's last row.
pub(crate) fn case_page(rows: Vec<(CaseRecord, Cursor)>, size: usize) -> Page<CaseRecord> {
    let next_cursor = match (rows.len() > size, rows.get(size.wrapping_sub(1))) {
        (true, Some((_, key))) => Some(key.encode()),
        _ => None,
    };
    Page { items: rows.into_iter().take(size).map(|(rec, _)| rec).collect(), next_cursor }
}

pub(crate) fn message_row(r: &impl RowGet) -> Result<MessageRecord> {
    Ok(MessageRecord {
        message_id: parse_id("message id", &r.text("message_id")?, MessageId::parse)?,
        case_id: r.opt_text("case_id")?.map(|s| parse_id("case id", &s, CaseId::parse)).transpose()?,
        direction: Direction::decode(&r.text("direction")?)?,
        peer: parse_id("peer", &r.text("peer")?, |s: &str| OrgKey::parse(s))?,
        message_type: parse_id("message type", &r.text("message_type")?, sdx_model::MessageType::parse)?,
        sequence: r.opt_int("sequence")?.map(seq_from_db).transpose()?,
        created_at: from_ms(r.int("created_at")?)?,
        stored_at: from_ms(r.int("stored_at")?)?,
        jws: r.text("jws")?,
        digest: parse_id("digest", &r.text("digest")?, |s: &str| sdx_model::Sha256Hex::parse(s))?,
        state: MessageState::decode(&r.text("state")?)?,
    })
}

pub(crate) fn delivery_row(r: &impl RowGet) -> Result<Delivery> {
    Ok(Delivery {
        message_id: parse_id("message id", &r.text("message_id")?, MessageId::parse)?,
        peer: parse_id("peer", &r.text("peer")?, |s: &str| OrgKey::parse(s))?,
        state: DeliveryState::decode(&r.text("state")?)?,
        attempts: u32_of(r, "attempts")?,
        created_at: from_ms(r.int("created_at")?)?,
        next_attempt_at: from_ms(r.int("next_attempt_at")?)?,
        last_error: r.opt_text("last_error")?,
        delivered_at: r.opt_int("delivered_at")?.map(from_ms).transpose()?,
    })
}

pub(crate) fn receipt_row(r: &impl RowGet) -> Result<ReceiptRecord> {
    Ok(ReceiptRecord {
        for_message: parse_id("message id", &r.text("for_message")?, MessageId::parse)?,
        direction: Direction::decode(&r.text("direction")?)?,
        result: parse_id("receipt result", &r.text("result")?, sdx_model::ReceiptResult::parse)?,
        jws: r.text("jws")?,
        received_at: from_ms(r.int("received_at")?)?,
    })
}

pub(crate) fn event_row(r: &impl RowGet) -> Result<TimelineEvent> {
    Ok(TimelineEvent {
        case_id: parse_id("case id", &r.text("case_id")?, CaseId::parse)?,
        at: from_ms(r.int("at")?)?,
        kind: EventKind::decode(&r.text("kind")?)?,
        message_id: r.opt_text("message_id")?.map(|s| parse_id("message id", &s, MessageId::parse)).transpose()?,
        detail: r.text("detail")?,
    })
}

/// The `sqlx` implementation, expanded for PostgreSQL (the SQLite engine runs the same statements through
/// `rusqlite`, see `sqlite_queries`).
macro_rules! shared_queries {
    ($DB:ty, $Tx:ty, $claim:expr) => {
        use sdx_model::{CaseId, Coded, MessageId, OrgKey, Timestamp};
        use sqlx::Executor;

        use crate::error::{Error, Result};
        use crate::queries::{self as q, Bind};
        use crate::record::{
            CaseQuery, CaseRecord, Delivery, DeliveryState, Direction, MessageRecord, MessageState, Page,
            ReceiptRecord, TimelineEvent, ms, seq_from_db, seq_to_db,
        };

        type Conn = <$DB as sqlx::Database>::Connection;
        use crate::queries::{case_row, delivery_row, event_row, message_row, receipt_row};

        pub(crate) async fn get_case<'c, E: Executor<'c, Database = $DB>>(
            e: E,
            id: CaseId,
        ) -> Result<Option<CaseRecord>> {
            let row = sqlx::query(q::GET_CASE).bind(id.to_string()).fetch_optional(e).await?;
            row.as_ref().map(case_row).transpose()
        }

        pub(crate) async fn query_cases<'c, E: Executor<'c, Database = $DB>>(
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

        pub(crate) async fn timeline<'c, E: Executor<'c, Database = $DB>>(
            e: E,
            id: CaseId,
        ) -> Result<Vec<TimelineEvent>> {
            let rows = sqlx::query(q::TIMELINE).bind(id.to_string()).fetch_all(e).await?;
            rows.iter().map(event_row).collect()
        }

        pub(crate) async fn get_message<'c, E: Executor<'c, Database = $DB>>(
            e: E,
            id: MessageId,
        ) -> Result<Option<MessageRecord>> {
            let row = sqlx::query(q::GET_MESSAGE).bind(id.to_string()).fetch_optional(e).await?;
            row.as_ref().map(message_row).transpose()
        }

        pub(crate) async fn list_deliveries<'c, E: Executor<'c, Database = $DB>>(
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
            .bind(q::to_json(case)?);
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
                    let exists = sqlx::query(q::CASE_EXISTS)
                        .bind(case.case_id.to_string())
                        .fetch_optional(&mut *c)
                        .await?
                        .is_some();
                    Err(if exists { Error::Conflict } else { Error::NotFound })
                }
            }
        }

        pub(crate) async fn next_out_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey) -> Result<u64> {
            let row = sqlx::query(q::NEXT_OUT).bind(case.to_string()).bind(peer.as_str()).fetch_one(&mut *c).await?;
            seq_from_db(q::RowGet::int(&row, "last_out")?)
        }

        pub(crate) async fn last_in_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey) -> Result<u64> {
            let row =
                sqlx::query(q::LAST_IN).bind(case.to_string()).bind(peer.as_str()).fetch_optional(&mut *c).await?;
            match row {
                Some(r) => seq_from_db(q::RowGet::int(&r, "last_in")?),
                None => Ok(0),
            }
        }

        pub(crate) async fn set_last_in_sequence(c: &mut Conn, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
            sqlx::query(q::SET_LAST_IN)
                .bind(case.to_string())
                .bind(peer.as_str())
                .bind(seq_to_db(seq)?)
                .execute(&mut *c)
                .await?;
            Ok(())
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

        pub(crate) async fn set_message_state(c: &mut Conn, id: MessageId, state: MessageState) -> Result<()> {
            let done =
                sqlx::query(q::SET_MESSAGE_STATE).bind(id.to_string()).bind(state.as_str()).execute(&mut *c).await?;
            if done.rows_affected() == 1 { Ok(()) } else { Err(Error::NotFound) }
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
            let rows = sqlx::query($claim)
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
            let done =
                sqlx::query(q::DELIVERED).bind(id.to_string()).bind(ms(&receipt.received_at)).execute(&mut *c).await?;
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
                // Already delivered (a receipt overtook the failure report): nothing to do.
                let exists =
                    sqlx::query(q::DELIVERY_EXISTS).bind(id.to_string()).fetch_optional(&mut *c).await?.is_some();
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

        impl crate::StoreTx for $Tx {
            async fn commit(self) -> Result<()> {
                self.finish().await
            }
            async fn get_case(&mut self, id: CaseId) -> Result<Option<CaseRecord>> {
                get_case(self.conn()?, id).await
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
            async fn set_message_state(&mut self, id: MessageId, state: MessageState) -> Result<()> {
                set_message_state(self.conn()?, id, state).await
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
            async fn get_receipt(
                &mut self,
                for_message: MessageId,
                direction: Direction,
            ) -> Result<Option<ReceiptRecord>> {
                get_receipt(self.conn()?, for_message, direction).await
            }
            async fn add_event(&mut self, ev: &TimelineEvent) -> Result<()> {
                add_event(self.conn()?, ev).await
            }
        }
    };
}
pub(crate) use shared_queries;

/// The embedded migrations of one engine, as a `sqlx` migrator.
pub(crate) fn migrator(files: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(*version, (*description).into(), MigrationType::Simple, sql.into_sql_str(), false)
            })
            .collect(),
    )
}
