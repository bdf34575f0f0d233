-- SDX node storage, PostgreSQL: the same tables as the SQLite migration. Times are Unix milliseconds (UTC).
-- Text columns use the "C" collation so that ordering and prefix ranges (region) compare bytes, as in SQLite,
-- whatever the database's default locale. No foreign keys: every write path is a single transaction written by
-- this crate, and the lookups they would cost are on the hot path. The tables live in the schema the store was
-- opened with (search_path).

-- Cases: the case document as JSON plus the columns the uniform query filters and orders on.
CREATE TABLE cases (
    case_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    revision    BIGINT  NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    ticket_type TEXT COLLATE "C" NOT NULL,
    priority    TEXT COLLATE "C" NOT NULL,
    leika_key   TEXT COLLATE "C",
    region      TEXT COLLATE "C",
    partner     TEXT COLLATE "C" NOT NULL,
    our_role    TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT  NOT NULL,
    doc         TEXT COLLATE "C" NOT NULL
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
    case_id  TEXT COLLATE "C" NOT NULL,
    peer     TEXT COLLATE "C" NOT NULL,
    last_out BIGINT  NOT NULL DEFAULT 0,
    last_in  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (case_id, peer)
);

-- Every message sent or received, exactly as signed.
CREATE TABLE messages (
    message_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    case_id      TEXT COLLATE "C",
    direction    TEXT COLLATE "C" NOT NULL,
    peer         TEXT COLLATE "C" NOT NULL,
    message_type TEXT COLLATE "C" NOT NULL,
    sequence     BIGINT,
    created_at   BIGINT  NOT NULL,
    stored_at    BIGINT  NOT NULL,
    jws          TEXT COLLATE "C" NOT NULL,
    digest       TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL
);
CREATE INDEX messages_held ON messages (case_id, peer, sequence) WHERE direction = 'in' AND state = 'held';

-- The outbox: one delivery per outbound message. lease_until = 0 means not leased.
CREATE TABLE deliveries (
    message_id      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    peer            TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL,
    attempts        BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT COLLATE "C",
    delivered_at    BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_state ON deliveries (state, created_at, message_id);

-- Receipts we sent (direction 'out') or received ('in'); the first one stored is kept.
CREATE TABLE receipts (
    for_message TEXT COLLATE "C" NOT NULL,
    direction   TEXT COLLATE "C" NOT NULL,
    result      TEXT COLLATE "C" NOT NULL,
    jws         TEXT COLLATE "C" NOT NULL,
    received_at BIGINT  NOT NULL,
    PRIMARY KEY (for_message, direction)
);

-- The cross-organisation timeline of each case.
CREATE TABLE events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id    TEXT COLLATE "C" NOT NULL,
    at         BIGINT  NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C",
    detail     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX events_by_case ON events (case_id, at, id);
