-- The outgoing messages not yet delivered, per case and peer in sequence order: a delivery is claimed only when
-- no earlier message of its case to the same peer is still undelivered, so a receiver gets a case's messages in
-- order and answers each with its final result.
CREATE INDEX messages_out_pending ON messages (case_id, peer, sequence) WHERE direction = 'out' AND state = 'pending';
