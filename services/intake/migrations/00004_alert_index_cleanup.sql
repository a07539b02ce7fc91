-- The open-incident index of alerts is cleaned when an incident stops
-- taking alerts (resolved, closed, cancelled): the projection deletes its
-- rows by ticket, which this index serves.

-- +goose Up
CREATE INDEX alert_incidents_ticket_idx ON intake.alert_incidents (tenant_id, ticket_id);

-- +goose Down
DROP INDEX intake.alert_incidents_ticket_idx;
