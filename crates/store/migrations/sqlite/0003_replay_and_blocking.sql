-- Every message of a case, both directions, in sequence order: a node replays a case from its messages when
-- concurrent changes met (docs/protocol.md, "Concurrent changes"), and finds held messages. It replaces the
-- partial index of held messages.
DROP INDEX messages_held;
CREATE INDEX messages_by_case ON messages (case_id, direction, peer, sequence);
-- A case's next message waits behind an earlier one that is pending *or dead* (the peer does not have a dead
-- letter; sending past it would leave the rest held there for ever).
DROP INDEX messages_out_pending;
CREATE INDEX messages_out_open ON messages (case_id, peer, sequence)
    WHERE direction = 'out' AND state IN ('pending', 'dead');
