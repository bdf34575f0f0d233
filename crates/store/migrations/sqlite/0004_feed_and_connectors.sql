-- The change feed reads events in the order they were committed: SQLite has one writer, so that is id order
-- (events_by_id is the rowid). Connectors keep their state (links ticket <-> case, cursors) here, and local
-- changes sent with an Idempotency-Key are remembered so that a retry is answered, not applied again.
CREATE TABLE connector_state (
    connector  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (connector, key)
) WITHOUT ROWID;
CREATE TABLE idempotency (
    key        TEXT    NOT NULL PRIMARY KEY,
    case_id    TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    at         INTEGER NOT NULL
) WITHOUT ROWID;
