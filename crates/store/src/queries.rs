//! The SQL both engines share, and the code that binds it and decodes rows.
//!
//! Both engines understand the same statements: numbered parameters (`$1`), `INSERT … ON CONFLICT DO NOTHING`,
//! upserts with `RETURNING`, row-value comparisons and partial indexes. They are run by `sqlite_queries`
//! (`rusqlite`) and `postgres_queries` (`sqlx`); only claiming deliveries differs (`FOR UPDATE SKIP LOCKED`).
//! Everything engine-independent (building the case query, decoding rows) is a plain function here.

use sdx_model::{CaseId, Coded, MessageId, OrgKey, Status};

use crate::error::{Error, Result};
use crate::record::{
    CaseQuery, CaseRecord, Cursor, Delivery, DeliveryState, Direction, EventKind, MessageRecord, MessageState, OurRole,
    Page, ReceiptRecord, TimelineEvent, from_ms, ms, parse_id, seq_from_db,
};

/// `SELECT` of one notice by (origin, notice id), with a suffix (`FOR UPDATE` on PostgreSQL).
macro_rules! const_format_notice {
    ($suffix:literal) => {
        concat!(
            "SELECT origin, notice_id, notice_type, starts_at, ends_at, issued_at, message_id, received_at, doc ",
            "FROM notices WHERE origin = $1 AND notice_id = $2",
            $suffix
        )
    };
}

pub(crate) const CASE_COLS: &str = "doc, partner, our_role, updated_at, case_id, owner";
pub(crate) const GET_CASE: &str =
    "SELECT doc, partner, our_role, updated_at, case_id, owner FROM cases WHERE case_id = $1";
/// The case row, locked until the transaction ends (PostgreSQL; SQLite's single writer serialises anyway): every
/// change of a case — local, received, or recomputed — reads it this way first, so they run one after the other.
pub(crate) const GET_CASE_FOR_UPDATE: &str =
    "SELECT doc, partner, our_role, updated_at, case_id, owner FROM cases WHERE case_id = $1 FOR UPDATE";
pub(crate) const CASE_EXISTS: &str = "SELECT case_id FROM cases WHERE case_id = $1";
pub(crate) const INSERT_CASE: &str = "INSERT INTO cases \
    (case_id, revision, status, ticket_type, priority, leika_key, region, partner, our_role, updated_at, doc, owner) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (case_id) DO NOTHING";
pub(crate) const UPDATE_CASE: &str = "UPDATE cases SET revision = $2, status = $3, ticket_type = $4, priority = $5, \
    leika_key = $6, region = $7, partner = $8, our_role = $9, updated_at = $10, doc = $11, owner = $12 \
    WHERE case_id = $1 AND revision = $13";

pub(crate) const NEXT_OUT: &str = "INSERT INTO sequences (case_id, peer, last_out, last_in) VALUES ($1, $2, 1, 0) \
    ON CONFLICT (case_id, peer) DO UPDATE SET last_out = sequences.last_out + 1 RETURNING last_out";
/// Reads `last_in` *and locks the row* (an upsert that changes nothing takes the row lock on PostgreSQL; SQLite
/// serialises writers anyway), so two transactions receiving for the same case and peer run one after the other:
/// the second sees the first's sequence, and an early message is never left held behind a gap that was filled.
pub(crate) const LAST_IN: &str = "INSERT INTO sequences (case_id, peer, last_out, last_in) VALUES ($1, $2, 0, 0) \
    ON CONFLICT (case_id, peer) DO UPDATE SET last_in = sequences.last_in RETURNING last_in";
pub(crate) const LAST_OUT: &str = "SELECT last_out FROM sequences WHERE case_id = $1 AND peer = $2";
pub(crate) const SET_LAST_OUT: &str = "UPDATE sequences SET last_out = $3 WHERE case_id = $1 AND peer = $2";
pub(crate) const SET_LAST_IN: &str = "INSERT INTO sequences (case_id, peer, last_out, last_in) VALUES ($1, $2, 0, $3) \
    ON CONFLICT (case_id, peer) DO UPDATE SET last_in = excluded.last_in";

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (message_id, case_id, direction, peer, message_type, sequence, created_at, stored_at, jws, digest, state) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (message_id) DO NOTHING";
pub(crate) const GET_MESSAGE: &str = "SELECT message_id, case_id, direction, peer, message_type, sequence, \
    created_at, stored_at, jws, digest, state FROM messages WHERE message_id = $1";
pub(crate) const SET_MESSAGE_STATE: &str = "UPDATE messages SET state = $2 WHERE message_id = $1";
pub(crate) const SET_INBOUND_STATE: &str = "UPDATE messages SET state = $2 WHERE message_id = $1 AND direction = 'in'";
/// Every message of a case, both directions, each peer in sequence order (replaying a case): the timeline names
/// every message sent or received about the case (`events_by_case`), the messages are read by id.
pub(crate) const CASE_MESSAGES: &str = "SELECT message_id, case_id, direction, peer, message_type, sequence, \
    created_at, stored_at, jws, digest, state FROM messages WHERE message_id IN (SELECT message_id FROM events \
    WHERE case_id = $1 AND kind IN ('messageSent', 'messageReceived') AND message_id IS NOT NULL) \
    AND case_id = $1 ORDER BY direction, peer, sequence";
pub(crate) const HELD: &str = "SELECT message_id, case_id, direction, peer, message_type, sequence, \
    created_at, stored_at, jws, digest, state FROM messages \
    WHERE case_id = $1 AND peer = $2 AND direction = 'in' AND state = 'held' ORDER BY sequence, message_id";

pub(crate) const ENQUEUE: &str = "INSERT INTO deliveries \
    (message_id, peer, state, attempts, created_at, next_attempt_at, lease_until, last_error, delivered_at) \
    VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8) ON CONFLICT (message_id) DO NOTHING";
/// The claimable deliveries: pending, due, not leased, and no earlier message of the same case to the same peer
/// still pending or dead (so a case's messages reach the peer one after the other, in sequence order, and none
/// goes out past a dead letter, which the peer does not have). `$1` now.
macro_rules! claimable {
    () => {
        "SELECT d.message_id FROM deliveries d \
    WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 AND NOT EXISTS (\
    SELECT 1 FROM messages m JOIN messages e ON e.case_id = m.case_id AND e.peer = m.peer \
    AND e.direction = 'out' AND e.state IN ('pending', 'dead') AND e.sequence < m.sequence \
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
    delivered_at = COALESCE(delivered_at, $2), last_error = NULL, lease_until = 0 WHERE message_id = $1";
pub(crate) const REJECTED: &str = "UPDATE deliveries SET state = 'rejected', \
    delivered_at = COALESCE(delivered_at, $2), last_error = $3, lease_until = 0 \
    WHERE message_id = $1 AND state NOT IN ('delivered', 'rejected')";
pub(crate) const FAILED: &str = "UPDATE deliveries SET attempts = $2, next_attempt_at = $3, last_error = $4, \
    state = $5, lease_until = 0 WHERE message_id = $1 AND state = 'pending'";
pub(crate) const RELEASE_LEASES: &str = "UPDATE deliveries SET lease_until = 0 WHERE lease_until <> 0";
pub(crate) const DELIVERY_EXISTS: &str = "SELECT message_id FROM deliveries WHERE message_id = $1";
/// A retried dead letter starts afresh: attempts and the age limit count from the retry.
pub(crate) const RETRY_DEAD: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = $2, created_at = $2, \
    attempts = 0, lease_until = 0 WHERE message_id = $1 AND state = 'dead'";
pub(crate) const SKIP_DEAD: &str =
    "UPDATE deliveries SET state = 'skipped', lease_until = 0 WHERE message_id = $1 AND state = 'dead'";
pub(crate) const SUPERSEDE: &str =
    "UPDATE deliveries SET state = 'superseded', lease_until = 0 WHERE message_id = $1 AND state = 'pending'";
/// Open deliveries per peer and state. (`IN` as in the partial index's predicate.)
pub(crate) const OPEN_DELIVERIES: &str = "SELECT peer, state, COUNT(*) AS n, MIN(created_at) AS oldest \
    FROM deliveries WHERE state IN ('pending', 'dead') GROUP BY peer, state ORDER BY peer, state";
/// Cases with a dead letter. (The `IN` term matches the predicate of `messages_out_open`, so SQLite uses it.) A
/// dead service notice (no case) blocks nothing: notices are not ordered behind each other.
pub(crate) const BLOCKED_COUNT: &str = "SELECT COUNT(*) AS n FROM (SELECT DISTINCT case_id, peer FROM messages \
    WHERE direction = 'out' AND state IN ('pending', 'dead') AND state = 'dead' AND case_id IS NOT NULL) AS b";
pub(crate) const LIST_BLOCKED: &str = "SELECT m.case_id, m.peer, m.message_id, m.message_type, m.sequence, \
    d.attempts, d.last_error, (SELECT COUNT(*) FROM messages w WHERE w.case_id = m.case_id AND w.peer = m.peer \
    AND w.direction = 'out' AND w.state IN ('pending', 'dead') AND w.sequence > m.sequence) AS waiting \
    FROM messages m JOIN deliveries d ON d.message_id = m.message_id \
    WHERE m.direction = 'out' AND m.state IN ('pending', 'dead') AND m.state = 'dead' AND m.case_id IS NOT NULL \
    ORDER BY m.stored_at, m.message_id LIMIT $1";
pub(crate) const GET_DELIVERY: &str = "SELECT message_id, peer, state, attempts, created_at, next_attempt_at, \
    last_error, delivered_at FROM deliveries WHERE message_id = $1";
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

pub(crate) const FEED_SQLITE: &str = "SELECT 0 AS xid, id, case_id, at, kind, message_id, detail FROM events \
    WHERE id > $1 ORDER BY id LIMIT $2";
pub(crate) const FEED_POSTGRES: &str = "SELECT xid::text::bigint AS xid, id, case_id, at, kind, message_id, detail \
    FROM events WHERE (xid, id) > ($1::text::xid8, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot()) \
    ORDER BY xid, id LIMIT $3";
pub(crate) const GET_STATE: &str = "SELECT value, version FROM connector_state WHERE connector = $1 AND key = $2";
pub(crate) const INSERT_STATE: &str = "INSERT INTO connector_state (connector, key, value, version, updated_at) \
    VALUES ($1, $2, $3, 1, $4) ON CONFLICT (connector, key) DO NOTHING";
pub(crate) const UPDATE_STATE: &str = "UPDATE connector_state SET value = $3, version = version + 1, updated_at = $4 \
    WHERE connector = $1 AND key = $2 RETURNING version";
pub(crate) const UPDATE_STATE_IF: &str = "UPDATE connector_state SET value = $3, version = version + 1, \
    updated_at = $4 WHERE connector = $1 AND key = $2 AND version = $5 RETURNING version";
pub(crate) const DELETE_STATE: &str = "DELETE FROM connector_state WHERE connector = $1 AND key = $2";
pub(crate) const DELETE_STATE_IF: &str =
    "DELETE FROM connector_state WHERE connector = $1 AND key = $2 AND version = $3";
pub(crate) const GET_IDEMPOTENT: &str = "SELECT case_id, message_id FROM idempotency WHERE key = $1";
pub(crate) const PUT_IDEMPOTENT: &str = "INSERT INTO idempotency (key, case_id, message_id, at) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING";

/// Insert a notice, or replace the stored version if this one is later by (issued_at, message_id).
pub(crate) const PUT_NOTICE: &str = "INSERT INTO notices \
    (origin, notice_id, notice_type, starts_at, ends_at, issued_at, message_id, received_at, doc) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (origin, notice_id) DO UPDATE SET \
    notice_type = excluded.notice_type, starts_at = excluded.starts_at, ends_at = excluded.ends_at, \
    issued_at = excluded.issued_at, message_id = excluded.message_id, received_at = excluded.received_at, \
    doc = excluded.doc WHERE (notices.issued_at, notices.message_id) < (excluded.issued_at, excluded.message_id)";
pub(crate) const GET_NOTICE: &str = const_format_notice!("");
pub(crate) const GET_NOTICE_FOR_UPDATE: &str = const_format_notice!(" FOR UPDATE");
/// The active notices at `$1` (the `notice_type` term is the predicate of `notices_active`), `$2` limit.
pub(crate) const ACTIVE_NOTICES: &str = "SELECT origin, notice_id, notice_type, starts_at, ends_at, issued_at, \
    message_id, received_at, doc FROM notices WHERE notice_type <> 'resolution' AND (ends_at IS NULL OR ends_at > $1) \
    ORDER BY starts_at, origin, notice_id LIMIT $2";

/// A notice row.
pub(crate) fn notice_row(r: &impl RowGet) -> Result<crate::record::NoticeRecord> {
    let doc = r.text("doc")?;
    let notice = serde_json::from_str(&doc).map_err(|e| Error::Corrupt(format!("stored notice: {e}")))?;
    Ok(crate::record::NoticeRecord {
        origin: parse_id("origin", &r.text("origin")?, |s: &str| OrgKey::parse(s))?,
        notice,
        message_id: parse_id("message id", &r.text("message_id")?, MessageId::parse)?,
        issued_at: from_ms(r.int("issued_at")?)?,
        received_at: from_ms(r.int("received_at")?)?,
    })
}

/// The bound values of [`PUT_NOTICE`], in order: texts and integers.
pub(crate) struct NoticeBinds {
    pub origin: String,
    pub notice_id: String,
    pub notice_type: &'static str,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub issued_at: i64,
    pub message_id: String,
    pub received_at: i64,
    pub doc: String,
}

pub(crate) fn notice_binds(rec: &crate::record::NoticeRecord) -> Result<NoticeBinds> {
    let n = &rec.notice;
    Ok(NoticeBinds {
        origin: rec.origin.to_string(),
        notice_id: n.notice_id.to_string(),
        notice_type: n.notice_type.code(),
        starts_at: ms(&n.starts_at),
        ends_at: n.ends_at.as_ref().map(ms),
        issued_at: ms(&rec.issued_at),
        message_id: rec.message_id.to_string(),
        received_at: ms(&rec.received_at),
        doc: serde_json::to_string(n).map_err(|e| Error::Invalid(format!("notice does not serialize: {e}")))?,
    })
}

/// A feed row: the cursor and the event.
pub(crate) fn feed_row(r: &impl RowGet) -> Result<crate::record::FeedEvent> {
    let xid = u64::try_from(r.int("xid")?).map_err(|_| Error::Corrupt("negative transaction id".into()))?;
    Ok(crate::record::FeedEvent { cursor: crate::record::FeedCursor { xid, id: r.int("id")? }, event: event_row(r)? })
}

/// An idempotency row.
pub(crate) fn idempotent_row(r: &impl RowGet) -> Result<crate::record::IdempotentResult> {
    Ok(crate::record::IdempotentResult {
        case_id: parse_id("case id", &r.text("case_id")?, CaseId::parse)?,
        message_id: parse_id("message id", &r.text("message_id")?, MessageId::parse)?,
    })
}

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
    if let Some(o) = &q.owner {
        conds.push(format!("owner = {}", param(Bind::Text(o.clone()), &mut binds)));
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
        owner: r.opt_text("owner")?,
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

pub(crate) fn open_deliveries_row(r: &impl RowGet) -> Result<crate::record::OpenDeliveries> {
    Ok(crate::record::OpenDeliveries {
        peer: parse_id("peer", &r.text("peer")?, |s: &str| OrgKey::parse(s))?,
        state: DeliveryState::decode(&r.text("state")?)?,
        count: u64::try_from(r.int("n")?).map_err(|_| Error::Corrupt("negative count".into()))?,
        oldest: from_ms(r.int("oldest")?)?,
    })
}

pub(crate) fn blocked_row(r: &impl RowGet) -> Result<crate::record::BlockedCase> {
    Ok(crate::record::BlockedCase {
        case_id: parse_id("case id", &r.text("case_id")?, CaseId::parse)?,
        peer: parse_id("peer", &r.text("peer")?, |s: &str| OrgKey::parse(s))?,
        message_id: parse_id("message id", &r.text("message_id")?, MessageId::parse)?,
        message_type: parse_id("message type", &r.text("message_type")?, sdx_model::MessageType::parse)?,
        sequence: r.opt_int("sequence")?.map(seq_from_db).transpose()?,
        attempts: u32_of(r, "attempts")?,
        last_error: r.opt_text("last_error")?,
        waiting: u64::try_from(r.int("waiting")?).map_err(|_| Error::Corrupt("negative count".into()))?,
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
