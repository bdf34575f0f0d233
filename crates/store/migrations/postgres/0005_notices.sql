-- Service notices (issue 9, use case 2.3): the latest version of each notice, keyed by the organisation that
-- issued it and its notice id. A version replaces the stored one only if it is later by (issued_at, message_id) —
-- the issuing message's createdAt, then its time-ordered id — so a version that arrives late changes nothing and
-- the same message twice is stored once. The notice (services, regions, title, text, related cases) is kept as
-- JSON in doc; the columns are what listing the active ones filters and orders on.
CREATE TABLE notices (
    origin      TEXT COLLATE "C" NOT NULL,
    notice_id   TEXT COLLATE "C" NOT NULL,
    notice_type TEXT COLLATE "C" NOT NULL,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT,
    issued_at   BIGINT NOT NULL,
    message_id  TEXT COLLATE "C" NOT NULL,
    received_at BIGINT NOT NULL,
    doc         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (origin, notice_id)
);
-- The active ones (not ended), in listing order.
CREATE INDEX notices_active ON notices (starts_at, origin, notice_id) WHERE notice_type <> 'resolution';
