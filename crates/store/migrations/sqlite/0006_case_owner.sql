-- Several ticket systems inside one organisation (issue 9, use case 2.3): each case is owned by at most one API
-- client of the node (its name from `[[api.clients]]`); a client limited to its own cases sees and changes only
-- those. Local to the node, never sent. Queries of one client's cases use the index in paging order.
ALTER TABLE cases ADD COLUMN owner TEXT;
CREATE INDEX cases_by_owner ON cases (owner, updated_at, case_id) WHERE owner IS NOT NULL;
