-- The change feed must never skip an event: ids are taken in insert order but transactions commit in any order,
-- so a reader could see id 10 before id 9 commits. Each event records its transaction id; the feed orders by
-- (xid, id) and returns only events of transactions older than every transaction still running
-- (pg_snapshot_xmin), behind which nothing new can appear.
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_feed ON events (xid, id);
-- Connectors keep their state (links ticket <-> case, cursors) here, and local changes sent with an
-- Idempotency-Key are remembered so that a retry is answered, not applied again.
CREATE TABLE connector_state (
    connector  TEXT COLLATE "C" NOT NULL,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (connector, key)
);
CREATE TABLE idempotency (
    key        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    case_id    TEXT COLLATE "C" NOT NULL,
    message_id TEXT COLLATE "C" NOT NULL,
    at         BIGINT NOT NULL
);
