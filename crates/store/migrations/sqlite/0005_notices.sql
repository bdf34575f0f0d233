-- Service notices (issue 9, use case 2.3): the latest version of each notice, keyed by the organisation that
-- issued it and its notice id. A version replaces the stored one only if it is later by (issued_at, message_id) —
-- the issuing message's createdAt, then its time-ordered id — so a version that arrives late changes nothing and
-- the same message twice is stored once. The notice (services, regions, title, text, related cases) is kept as
-- JSON in doc; the columns are what listing the active ones filters and orders on.
CREATE TABLE notices (
    origin      TEXT    NOT NULL,
    notice_id   TEXT    NOT NULL,
    notice_type TEXT    NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER,
    issued_at   INTEGER NOT NULL,
    message_id  TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    doc         TEXT    NOT NULL,
    PRIMARY KEY (origin, notice_id)
) WITHOUT ROWID;
-- The active ones (not ended), in listing order.
CREATE INDEX notices_active ON notices (starts_at, origin, notice_id) WHERE notice_type <> 'resolution';
