-- Tickets know their requester as a user (when there is one), so that a
-- requester sees only their own; and both tables force row-level security
-- on the tenant of the transaction (pgdb.InTenantTx), a second line of
-- defence behind the tenant_id filter of every query.

-- +goose Up
ALTER TABLE intake.tickets ADD COLUMN requester_id text;
CREATE INDEX tickets_tenant_requester_idx ON intake.tickets (tenant_id, requester_id, created_at DESC, id DESC)
    WHERE requester_id IS NOT NULL;

ALTER TABLE intake.tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.tickets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON intake.tickets
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE intake.ticket_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE intake.ticket_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON intake.ticket_events
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- +goose Down
DROP POLICY tenant_isolation ON intake.ticket_events;
ALTER TABLE intake.ticket_events NO FORCE ROW LEVEL SECURITY;
ALTER TABLE intake.ticket_events DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON intake.tickets;
ALTER TABLE intake.tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE intake.tickets DISABLE ROW LEVEL SECURITY;
DROP INDEX intake.tickets_tenant_requester_idx;
ALTER TABLE intake.tickets DROP COLUMN requester_id;
