//! The shared SQL ([`crate::queries`]) run through `rusqlite` on one SQLite connection: synchronous, in the
//! calling thread, with statements prepared once per connection and cached.
//!
//! The statements are written for both engines with numbered parameters `$1 … $n`. SQLite reads `$1` as a
//! *named* parameter (numbered in order of first appearance, which differs from `n` when a statement uses them
//! out of order), so every statement is rewritten to SQLite's numbered form `?n` — the static ones once per
//! process ([`sqlite_form`]), the dynamic case query each time it is built.

use rusqlite::{Connection, Params, params, params_from_iter};
use sdx_model::{CaseId, Coded, MessageId, OrgKey, Timestamp};

use crate::error::{Error, Result};
use crate::queries::{
    self as q, Bind, RowGet, blocked_row, case_row, delivery_row, event_row, message_row, open_deliveries_row,
    receipt_row,
};
use crate::record::{
    BlockedCase, CaseQuery, CaseRecord, Delivery, DeliveryState, DeliveryStats, Direction, FeedCursor, FeedEvent,
    IdempotentResult, MessageRecord, MessageState, Page, ReceiptRecord, StateEntry, TimelineEvent, ms, seq_from_db,
    seq_to_db,
};

/// `$n` → `?n` (the statements contain no `$` in literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// The SQLite form of a static statement, converted once per process (keyed by the statement's address).
fn sqlite_form(sql: &'static str) -> &'static str {
    static FORMS: std::sync::LazyLock<std::sync::RwLock<std::collections::HashMap<usize, &'static str>>> =
        std::sync::LazyLock::new(Default::default);
    let key = sql.as_ptr() as usize;
    if let Some(form) = FORMS.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return form;
    }
    // A few dozen statements, each converted and kept once for the life of the process.
    let form: &'static str = Box::leak(numbered(sql).into_boxed_str());
    FORMS.write().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(form)
}

fn execute(c: &Connection, sql: &'static str, p: impl Params) -> Result<usize> {
    Ok(c.prepare_cached(sqlite_form(sql))?.execute(p)?)
}

fn one<T>(
    c: &Connection,
    sql: &'static str,
    p: impl Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut st = c.prepare_cached(sqlite_form(sql))?;
    let mut rows = st.query(p)?;
    match rows.next()? {
        Some(r) => f(r).map(Some),
        None => Ok(None),
    }
}

/// Every row of `sql`, which is in SQLite's form already.
fn all<T>(c: &Connection, sql: &str, p: impl Params, f: impl Fn(&rusqlite::Row<'_>) -> Result<T>) -> Result<Vec<T>> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

pub(crate) fn get_case(c: &Connection, id: CaseId) -> Result<Option<CaseRecord>> {
    one(c, q::GET_CASE, params![id.to_string()], |r| case_row(r))
}

pub(crate) fn query_cases(c: &Connection, cq: &CaseQuery) -> Result<Page<CaseRecord>> {
    let (sql, binds) = q::case_query(cq)?;
    let values: Vec<rusqlite::types::Value> = binds
        .into_iter()
        .map(|b| match b {
            Bind::Int(v) => rusqlite::types::Value::Integer(v),
            Bind::Text(v) => rusqlite::types::Value::Text(v),
        })
        .collect();
    let rows = all(c, &numbered(&sql), params_from_iter(values), |r| q::case_row_with_key(r))?;
    Ok(q::case_page(rows, cq.page_size() as usize))
}

pub(crate) fn timeline(c: &Connection, id: CaseId) -> Result<Vec<TimelineEvent>> {
    all(c, sqlite_form(q::TIMELINE), params![id.to_string()], |r| event_row(r))
}

pub(crate) fn get_message(c: &Connection, id: MessageId) -> Result<Option<MessageRecord>> {
    one(c, q::GET_MESSAGE, params![id.to_string()], |r| message_row(r))
}

pub(crate) fn get_delivery(c: &Connection, id: MessageId) -> Result<Option<Delivery>> {
    one(c, q::GET_DELIVERY, params![id.to_string()], |r| delivery_row(r))
}

pub(crate) fn list_deliveries(c: &Connection, state: Option<DeliveryState>, limit: u32) -> Result<Vec<Delivery>> {
    let limit = i64::from(limit.min(crate::record::MAX_PAGE));
    match state {
        Some(s) => all(c, sqlite_form(q::LIST_DELIVERIES), params![s.as_str(), limit], |r| delivery_row(r)),
        None => all(c, sqlite_form(q::LIST_ALL_DELIVERIES), params![limit], |r| delivery_row(r)),
    }
}

pub(crate) fn put_case(c: &Connection, rec: &CaseRecord, expected: Option<u32>) -> Result<()> {
    let case = &rec.case;
    let leika = case.category.service.as_ref().and_then(|s| s.leika_key.as_ref()).map(|k| k.to_string());
    let region = case.region.as_ref().map(|r| r.to_string());
    let doc = q::to_json(case)?;
    let (id, rev, updated) = (case.case_id.to_string(), i64::from(case.revision), ms(&rec.updated_at));
    let (status, ticket_type, priority) = (case.status.code(), case.ticket_type.code(), case.priority.code());
    let (partner, role, owner) = (rec.partner.as_str(), rec.our_role.as_str(), rec.owner.as_deref());
    let changed = match expected {
        None => execute(
            c,
            q::INSERT_CASE,
            params![id, rev, status, ticket_type, priority, leika, region, partner, role, updated, doc, owner],
        )?,
        Some(expected) => execute(
            c,
            q::UPDATE_CASE,
            params![
                id,
                rev,
                status,
                ticket_type,
                priority,
                leika,
                region,
                partner,
                role,
                updated,
                doc,
                owner,
                i64::from(expected)
            ],
        )?,
    };
    if changed == 1 {
        return Ok(());
    }
    match expected {
        None => Err(Error::Conflict),
        Some(_) => {
            let exists = one(c, q::CASE_EXISTS, params![id], |_| Ok(()))?.is_some();
            Err(if exists { Error::Conflict } else { Error::NotFound })
        }
    }
}

pub(crate) fn next_out_sequence(c: &Connection, case: CaseId, peer: &OrgKey) -> Result<u64> {
    let last = one(c, q::NEXT_OUT, params![case.to_string(), peer.as_str()], |r| r.int("last_out"))?;
    seq_from_db(last.ok_or_else(|| Error::Corrupt("sequence upsert returned no row".into()))?)
}

/// A sequence number of (case, peer) read by `sql` from column `col`; 0 if there is no row.
fn sequence(c: &Connection, sql: &'static str, col: &str, case: CaseId, peer: &OrgKey) -> Result<u64> {
    match one(c, sql, params![case.to_string(), peer.as_str()], |r| r.int(col))? {
        Some(v) => seq_from_db(v),
        None => Ok(0),
    }
}

/// Set a sequence number of (case, peer) with `sql`.
fn set_sequence(c: &Connection, sql: &'static str, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
    execute(c, sql, params![case.to_string(), peer.as_str(), seq_to_db(seq)?])?;
    Ok(())
}

pub(crate) fn last_in_sequence(c: &Connection, case: CaseId, peer: &OrgKey) -> Result<u64> {
    sequence(c, q::LAST_IN, "last_in", case, peer)
}

pub(crate) fn set_last_in_sequence(c: &Connection, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
    set_sequence(c, q::SET_LAST_IN, case, peer, seq)
}

pub(crate) fn insert_message(c: &Connection, m: &MessageRecord) -> Result<()> {
    let done = execute(
        c,
        q::INSERT_MESSAGE,
        params![
            m.message_id.to_string(),
            m.case_id.map(|c| c.to_string()),
            m.direction.as_str(),
            m.peer.as_str(),
            m.message_type.code(),
            m.sequence.map(seq_to_db).transpose()?,
            ms(&m.created_at),
            ms(&m.stored_at),
            m.jws.as_str(),
            m.digest.as_str(),
            m.state.as_str(),
        ],
    )?;
    if done == 1 { Ok(()) } else { Err(Error::Duplicate) }
}

pub(crate) fn set_inbound_state(c: &Connection, id: MessageId, state: MessageState) -> Result<()> {
    let done = execute(c, q::SET_INBOUND_STATE, params![id.to_string(), state.as_str()])?;
    if done == 1 { Ok(()) } else { Err(Error::NotFound) }
}

pub(crate) fn last_out_sequence(c: &Connection, case: CaseId, peer: &OrgKey) -> Result<u64> {
    sequence(c, q::LAST_OUT, "last_out", case, peer)
}

pub(crate) fn set_last_out_sequence(c: &Connection, case: CaseId, peer: &OrgKey, seq: u64) -> Result<()> {
    set_sequence(c, q::SET_LAST_OUT, case, peer, seq)
}

pub(crate) fn case_messages(c: &Connection, case: CaseId) -> Result<Vec<MessageRecord>> {
    all(c, sqlite_form(q::CASE_MESSAGES), params![case.to_string()], |r| message_row(r))
}

pub(crate) fn delivery_stats(c: &Connection) -> Result<DeliveryStats> {
    let open = all(c, sqlite_form(q::OPEN_DELIVERIES), [], |r| open_deliveries_row(r))?;
    let blocked = one(c, q::BLOCKED_COUNT, [], |r| r.int("n"))?.unwrap_or(0);
    Ok(DeliveryStats {
        open,
        blocked_cases: u64::try_from(blocked).map_err(|_| Error::Corrupt("negative count".into()))?,
    })
}

pub(crate) fn list_blocked(c: &Connection, limit: u32) -> Result<Vec<BlockedCase>> {
    let limit = i64::from(limit.min(crate::record::MAX_PAGE));
    all(c, sqlite_form(q::LIST_BLOCKED), params![limit], |r| blocked_row(r))
}

/// Set an outbound message's state to go with its delivery's (the delivery statement changed `changed` rows).
fn follow(c: &Connection, id: MessageId, changed: usize, state: MessageState) -> Result<bool> {
    if changed == 0 {
        return Ok(false);
    }
    execute(c, q::SET_MESSAGE_STATE, params![id.to_string(), state.as_str()])?;
    Ok(true)
}

pub(crate) fn mark_rejected(c: &Connection, id: MessageId, receipt: &ReceiptRecord, error: &str) -> Result<()> {
    let changed = execute(c, q::REJECTED, params![id.to_string(), ms(&receipt.received_at), error])?;
    if !follow(c, id, changed, MessageState::Rejected)? {
        // Already delivered or rejected (a receipt came twice): nothing to do.
        if one(c, q::DELIVERY_EXISTS, params![id.to_string()], |_| Ok(()))?.is_none() {
            return Err(Error::NotFound);
        }
        return Ok(());
    }
    put_receipt(c, receipt)
}

pub(crate) fn skip_dead(c: &Connection, id: MessageId) -> Result<bool> {
    let changed = execute(c, q::SKIP_DEAD, params![id.to_string()])?;
    follow(c, id, changed, MessageState::Skipped)
}

pub(crate) fn supersede(c: &Connection, id: MessageId) -> Result<bool> {
    let changed = execute(c, q::SUPERSEDE, params![id.to_string()])?;
    follow(c, id, changed, MessageState::Superseded)
}

pub(crate) fn held_messages(c: &Connection, case: CaseId, peer: &OrgKey) -> Result<Vec<MessageRecord>> {
    all(c, sqlite_form(q::HELD), params![case.to_string(), peer.as_str()], |r| message_row(r))
}

pub(crate) fn enqueue(c: &Connection, d: &Delivery) -> Result<()> {
    let done = execute(
        c,
        q::ENQUEUE,
        params![
            d.message_id.to_string(),
            d.peer.as_str(),
            d.state.as_str(),
            i64::from(d.attempts),
            ms(&d.created_at),
            ms(&d.next_attempt_at),
            d.last_error.as_deref(),
            d.delivered_at.as_ref().map(ms),
        ],
    )?;
    if done == 1 { Ok(()) } else { Err(Error::Duplicate) }
}

pub(crate) fn claim_due(c: &Connection, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
    let limit = i64::from(limit.min(crate::record::MAX_PAGE));
    let mut out =
        all(c, sqlite_form(q::CLAIM_SQLITE), params![ms(&now), ms(&lease_until), limit], |r| delivery_row(r))?;
    // RETURNING does not keep the subquery's order.
    out.sort_by_key(|d| (d.next_attempt_at, d.message_id.to_string()));
    Ok(out)
}

pub(crate) fn mark_delivered(c: &Connection, id: MessageId, receipt: &ReceiptRecord) -> Result<()> {
    if execute(c, q::DELIVERED, params![id.to_string(), ms(&receipt.received_at)])? == 0 {
        return Err(Error::NotFound);
    }
    execute(c, q::SET_MESSAGE_STATE, params![id.to_string(), MessageState::Delivered.as_str()])?;
    put_receipt(c, receipt)
}

pub(crate) fn mark_failed(
    c: &Connection,
    id: MessageId,
    attempts: u32,
    next_attempt_at: Timestamp,
    error: &str,
    dead: bool,
) -> Result<()> {
    let state = if dead { DeliveryState::Dead } else { DeliveryState::Pending };
    let done = execute(
        c,
        q::FAILED,
        params![id.to_string(), i64::from(attempts), ms(&next_attempt_at), error, state.as_str()],
    )?;
    if done == 0 {
        // No longer pending (a receipt overtook the failure report): nothing to do.
        let exists = one(c, q::DELIVERY_EXISTS, params![id.to_string()], |_| Ok(()))?.is_some();
        return if exists { Ok(()) } else { Err(Error::NotFound) };
    }
    if dead {
        execute(c, q::SET_MESSAGE_STATE, params![id.to_string(), MessageState::Dead.as_str()])?;
    }
    Ok(())
}

pub(crate) fn release_leases(c: &Connection) -> Result<u64> {
    Ok(execute(c, q::RELEASE_LEASES, [])? as u64)
}

pub(crate) fn retry_dead(c: &Connection, id: MessageId, now: Timestamp) -> Result<bool> {
    if execute(c, q::RETRY_DEAD, params![id.to_string(), ms(&now)])? == 0 {
        return Ok(false);
    }
    execute(c, q::SET_MESSAGE_STATE, params![id.to_string(), MessageState::Pending.as_str()])?;
    Ok(true)
}

pub(crate) fn put_receipt(c: &Connection, r: &ReceiptRecord) -> Result<()> {
    execute(
        c,
        q::PUT_RECEIPT,
        params![r.for_message.to_string(), r.direction.as_str(), r.result.code(), r.jws.as_str(), ms(&r.received_at)],
    )?;
    Ok(())
}

pub(crate) fn get_receipt(
    c: &Connection,
    for_message: MessageId,
    direction: Direction,
) -> Result<Option<ReceiptRecord>> {
    one(c, q::GET_RECEIPT, params![for_message.to_string(), direction.as_str()], |r| receipt_row(r))
}

pub(crate) fn add_event(c: &Connection, ev: &TimelineEvent) -> Result<()> {
    execute(
        c,
        q::ADD_EVENT,
        params![
            ev.case_id.to_string(),
            ms(&ev.at),
            ev.kind.as_str(),
            ev.message_id.map(|m| m.to_string()),
            ev.detail.as_str()
        ],
    )?;
    Ok(())
}

pub(crate) fn feed(c: &Connection, after: FeedCursor, limit: u32) -> Result<Vec<FeedEvent>> {
    let limit = i64::from(limit.clamp(1, crate::record::MAX_PAGE));
    all(c, sqlite_form(q::FEED_SQLITE), params![after.id, limit], |r| q::feed_row(r))
}

pub(crate) fn connector_state(c: &Connection, connector: &str, key: &str) -> Result<Option<StateEntry>> {
    one(c, q::GET_STATE, params![connector, key], |r| {
        Ok(StateEntry { value: r.get("value")?, version: crate::record::seq_from_db(r.get("version")?)? })
    })
}

pub(crate) fn put_connector_state(
    c: &Connection,
    connector: &str,
    key: &str,
    value: Option<&str>,
    expected: Option<u64>,
    now: Timestamp,
) -> Result<u64> {
    let conflict = || Error::Conflict;
    let at = ms(&now);
    match (value, expected) {
        (None, None) => {
            execute(c, q::DELETE_STATE, params![connector, key])?;
            Ok(0)
        }
        (None, Some(v)) => match execute(c, q::DELETE_STATE_IF, params![connector, key, v as i64])? {
            1 => Ok(0),
            _ if v == 0 && connector_state(c, connector, key)?.is_none() => Ok(0),
            _ => Err(conflict()),
        },
        (Some(val), Some(0)) => match execute(c, q::INSERT_STATE, params![connector, key, val, at])? {
            1 => Ok(1),
            _ => Err(conflict()),
        },
        (Some(val), Some(v)) => {
            let n: Option<i64> =
                one(c, q::UPDATE_STATE_IF, params![connector, key, val, at, v as i64], |r| Ok(r.get(0)?))?;
            n.map(crate::record::seq_from_db).transpose()?.ok_or_else(conflict)
        }
        (Some(val), None) => {
            if execute(c, q::INSERT_STATE, params![connector, key, val, at])? == 1 {
                return Ok(1);
            }
            let n: Option<i64> = one(c, q::UPDATE_STATE, params![connector, key, val, at], |r| Ok(r.get(0)?))?;
            n.map(crate::record::seq_from_db).transpose()?.ok_or_else(conflict)
        }
    }
}

pub(crate) fn idempotent(c: &Connection, key: &str) -> Result<Option<IdempotentResult>> {
    one(c, q::GET_IDEMPOTENT, params![key], |r| q::idempotent_row(r))
}

pub(crate) fn put_idempotent(c: &Connection, key: &str, res: IdempotentResult, at: Timestamp) -> Result<()> {
    match execute(c, q::PUT_IDEMPOTENT, params![key, res.case_id.to_string(), res.message_id.to_string(), ms(&at)])? {
        1 => Ok(()),
        _ => Err(Error::Duplicate),
    }
}

pub(crate) fn put_notice(c: &Connection, rec: &crate::record::NoticeRecord) -> Result<bool> {
    let b = q::notice_binds(rec)?;
    let n = execute(
        c,
        q::PUT_NOTICE,
        params![
            b.origin,
            b.notice_id,
            b.notice_type,
            b.starts_at,
            b.ends_at,
            b.issued_at,
            b.message_id,
            b.received_at,
            b.doc
        ],
    )?;
    Ok(n == 1)
}

pub(crate) fn get_notice(
    c: &Connection,
    origin: &OrgKey,
    id: sdx_model::ItemId,
) -> Result<Option<crate::record::NoticeRecord>> {
    one(c, q::GET_NOTICE, params![origin.as_str(), id.to_string()], |r| q::notice_row(r))
}

pub(crate) fn active_notices(c: &Connection, now: Timestamp, limit: u32) -> Result<Vec<crate::record::NoticeRecord>> {
    let limit = i64::from(limit.clamp(1, crate::record::MAX_PAGE));
    all(c, sqlite_form(q::ACTIVE_NOTICES), params![ms(&now), limit], |r| q::notice_row(r))
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_parameters() {
        assert_eq!(
            numbered("UPDATE t SET a = $2 WHERE b = $1 AND c = $12"),
            "UPDATE t SET a = ?2 WHERE b = ?1 AND c = ?12"
        );
        assert_eq!(numbered("SELECT '$' || x"), "SELECT '$' || x");
    }
}
