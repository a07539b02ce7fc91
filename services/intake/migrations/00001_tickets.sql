-- Read model of the intake__tickets_v1 projection (stream TICKETS).
-- Rebuildable at any time from the stream: nothing here is the source of truth.

-- +goose Up
CREATE TABLE intake.tickets (
    tenant_id   text        NOT NULL,
    id          text        NOT NULL,
    number      text        NOT NULL,
    type        text        NOT NULL,
    status      text        NOT NULL,
    title       text        NOT NULL,
    description text        NOT NULL,
    impact      text        NOT NULL,
    urgency     text        NOT NULL,
    priority    text        NOT NULL,
    requester   text        NOT NULL,
    channel     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- number of events of the ticket (the API's ETag)
    version     bigint      NOT NULL,
    -- stream sequence of the last event applied to this row
    last_seq    bigint      NOT NULL,
    -- 'english' stems ("printers" finds "printer"); queries must use the same
    -- configuration (websearch_to_tsquery('english', ...)).
    search      tsvector    GENERATED ALWAYS AS (to_tsvector('english', title || ' ' || description)) STORED,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number)
);

-- Keyset pagination: newest first within a tenant. Status and type filters
-- ride on this index too; add dedicated ones when a tenant's volume asks.
CREATE INDEX tickets_tenant_created_idx ON intake.tickets (tenant_id, created_at DESC, id DESC);
CREATE INDEX tickets_search_idx ON intake.tickets USING gin (search);

-- Every event of every ticket, for GET /v1/tickets/{id}/events.
CREATE TABLE intake.ticket_events (
    -- stream sequence in TICKETS: unique, and the idempotency key of Apply
    seq       bigint      PRIMARY KEY,
    tenant_id text        NOT NULL,
    ticket_id text        NOT NULL,
    version   bigint      NOT NULL,
    event_id  text        NOT NULL,
    type      text        NOT NULL,
    time      timestamptz NOT NULL,
    actor     text        NOT NULL,
    data      jsonb       NOT NULL,
    trace_id  text        NOT NULL DEFAULT ''
);

CREATE INDEX ticket_events_ticket_idx ON intake.ticket_events (tenant_id, ticket_id, seq);

-- +goose Down
DROP TABLE intake.ticket_events;
DROP TABLE intake.tickets;
