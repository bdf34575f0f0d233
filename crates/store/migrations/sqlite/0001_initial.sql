-- SDX node storage, SQLite. Times are Unix milliseconds (UTC). Codes are the lower-camel-case codes of the
-- model's codelists and of the store's state enums. No foreign keys: every write path is a single transaction
-- written by this crate, and the lookups they would cost are on the hot path.

-- Cases: the case document as JSON plus the columns the uniform query filters and orders on.
CREATE TABLE cases (
    case_id     TEXT    NOT NULL PRIMARY KEY,
    revision    INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    ticket_type TEXT    NOT NULL,
    priority    TEXT    NOT NULL,
    leika_key   TEXT,
    region      TEXT,
    partner     TEXT    NOT NULL,
    our_role    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    doc         TEXT    NOT NULL
);
-- Keyset paging is by (updated_at, case_id). Status, partner, LeiKa key and region have an index in that order;
-- type and priority (few values) are trailing columns of the two order indexes, so a filter on them is checked
-- on index entries while walking the order, without reading case rows and without an index of their own (each
-- index costs a page in the WAL on every commit that touches it).
CREATE INDEX cases_by_updated   ON cases (updated_at, case_id, status, ticket_type, priority);
CREATE INDEX cases_by_status    ON cases (status, updated_at, case_id, ticket_type, priority);
CREATE INDEX cases_by_partner   ON cases (partner, updated_at, case_id);
CREATE INDEX cases_by_leika     ON cases (leika_key, updated_at, case_id) WHERE leika_key IS NOT NULL;
CREATE INDEX cases_by_region    ON cases (region, updated_at, case_id) WHERE region IS NOT NULL;

-- Sequence numbers per (case, peer): the last one we sent and the last one we applied.
CREATE TABLE sequences (
    case_id  TEXT    NOT NULL,
    peer     TEXT    NOT NULL,
    last_out INTEGER NOT NULL DEFAULT 0,
    last_in  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (case_id, peer)
) WITHOUT ROWID;

-- Every message sent or received, exactly as signed.
CREATE TABLE messages (
    message_id   TEXT    NOT NULL PRIMARY KEY,
    case_id      TEXT,
    direction    TEXT    NOT NULL,
    peer         TEXT    NOT NULL,
    message_type TEXT    NOT NULL,
    sequence     INTEGER,
    created_at   INTEGER NOT NULL,
    stored_at    INTEGER NOT NULL,
    jws          TEXT    NOT NULL,
    digest       TEXT    NOT NULL,
    state        TEXT    NOT NULL
);
CREATE INDEX messages_held ON messages (case_id, peer, sequence) WHERE direction = 'in' AND state = 'held';

-- The outbox: one delivery per outbound message. lease_until = 0 means not leased.
CREATE TABLE deliveries (
    message_id      TEXT    NOT NULL PRIMARY KEY,
    peer            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_state ON deliveries (state, created_at, message_id);

-- Receipts we sent (direction 'out') or received ('in'); the first one stored is kept.
CREATE TABLE receipts (
    for_message TEXT    NOT NULL,
    direction   TEXT    NOT NULL,
    result      TEXT    NOT NULL,
    jws         TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (for_message, direction)
);

-- The cross-organisation timeline of each case.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    case_id    TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    message_id TEXT,
    detail     TEXT    NOT NULL
);
CREATE INDEX events_by_case ON events (case_id, at, id);
