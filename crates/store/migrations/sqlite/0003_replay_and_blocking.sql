-- A case's next message waits behind an earlier one that is pending *or dead* (the peer does not have a dead
-- letter; sending past it would leave the rest held there for ever). The messages of a case (replaying it) are
-- found through the timeline, which names every message sent or received (events_by_case): no index on all
-- messages, whose every entry would cost a page on each commit.
DROP INDEX messages_out_pending;
CREATE INDEX messages_out_open ON messages (case_id, peer, sequence)
    WHERE direction = 'out' AND state IN ('pending', 'dead');
