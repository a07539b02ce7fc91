-- The whole ticket lifecycle and collaboration (issue 4): the tickets read
-- model gains classification, lifecycle and counters; comments, attachments
-- and links get their own tables; the auto-close timer and mail threading
-- get their indexes. All rebuildable from TICKETS, except the tables marked
-- "state", which the command side keeps.

-- +goose Up
ALTER TABLE intake.tickets
    ADD COLUMN category          text        NOT NULL DEFAULT '',
    ADD COLUMN tags              text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN config_items      text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN watchers          text[]      NOT NULL DEFAULT '{}',
    ADD COLUMN custom_fields     jsonb       NOT NULL DEFAULT '{}',
    -- filled by triage's events later; filterable now
    ADD COLUMN assignee_id       text,
    ADD COLUMN pending_reason    text        NOT NULL DEFAULT '',
    ADD COLUMN resolution_code   text        NOT NULL DEFAULT '',
    ADD COLUMN resolution_note   text        NOT NULL DEFAULT '',
    ADD COLUMN resolved_at       timestamptz,
    ADD COLUMN auto_close_at     timestamptz,
    ADD COLUMN reopen_until      timestamptz,
    ADD COLUMN closed_at         timestamptz,
    ADD COLUMN first_response_at timestamptz,
    ADD COLUMN merged_into       text        NOT NULL DEFAULT '',
    ADD COLUMN follow_up_of      text        NOT NULL DEFAULT '',
    ADD COLUMN satisfaction      smallint,
    ADD COLUMN comment_count     integer     NOT NULL DEFAULT 0,
    ADD COLUMN attachment_count  integer     NOT NULL DEFAULT 0,
    ADD COLUMN resolutions       integer     NOT NULL DEFAULT 0;

CREATE INDEX tickets_tenant_status_idx ON intake.tickets (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX tickets_tenant_assignee_idx ON intake.tickets (tenant_id, assignee_id, created_at DESC, id DESC)
    WHERE assignee_id IS NOT NULL;
CREATE INDEX tickets_tags_idx ON intake.tickets USING gin (tags);

-- Internal events (internal notes, their attachments) are hidden from
-- requesters in the history.
ALTER TABLE intake.ticket_events ADD COLUMN internal boolean NOT NULL DEFAULT false;

CREATE TABLE intake.ticket_comments (
    tenant_id   text        NOT NULL,
    ticket_id   text        NOT NULL,
    id          text        NOT NULL,
    seq         bigint      NOT NULL,
    body        text        NOT NULL,
    internal    boolean     NOT NULL,
    author_id   text        NOT NULL DEFAULT '',
    author      text        NOT NULL,
    author_role text        NOT NULL,
    channel     text        NOT NULL,
    message_id  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ticket_comments_ticket_idx ON intake.ticket_comments (tenant_id, ticket_id, seq);

CREATE TABLE intake.ticket_attachments (
    tenant_id    text        NOT NULL,
    ticket_id    text        NOT NULL,
    id           text        NOT NULL,
    seq          bigint      NOT NULL,
    blob_id      text        NOT NULL,
    filename     text        NOT NULL,
    content_type text        NOT NULL,
    size         bigint      NOT NULL,
    sha256       text        NOT NULL,
    internal     boolean     NOT NULL,
    inline       boolean     NOT NULL,
    comment_id   text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ticket_attachments_ticket_idx ON intake.ticket_attachments (tenant_id, ticket_id, seq);

CREATE TABLE intake.ticket_links (
    tenant_id     text        NOT NULL,
    ticket_id     text        NOT NULL,
    kind          text        NOT NULL,
    target_id     text        NOT NULL,
    target_number text        NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id, kind, target_id)
);

-- Message-IDs of every mail in and out that belongs to a ticket: replies
-- thread by In-Reply-To/References against them.
CREATE TABLE intake.message_ids (
    tenant_id  text NOT NULL,
    message_id text NOT NULL,
    ticket_id  text NOT NULL,
    PRIMARY KEY (tenant_id, message_id)
);

-- The auto-close timer: one row per resolved ticket, deleted when the
-- ticket leaves resolved. The sweeper reads it across tenants, so it holds
-- no ticket content: ids and a time.
CREATE TABLE intake.due_closures (
    tenant_id text        NOT NULL,
    ticket_id text        NOT NULL,
    due_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id)
);
CREATE INDEX due_closures_due_idx ON intake.due_closures (due_at);

-- state: Idempotency-Key of POST /v1/tickets, kept 24 hours.
CREATE TABLE intake.idempotency_keys (
    tenant_id    text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    ticket_id    text        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON intake.idempotency_keys (tenant_id, created_at);

-- state: file bytes of the Postgres blob store (attachments, raw mail).
CREATE TABLE intake.blobs (
    tenant_id    text        NOT NULL,
    id           text        NOT NULL,
    sha256       text        NOT NULL,
    size         bigint      NOT NULL,
    content_type text        NOT NULL,
    data         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- state: open incidents by alert group or fingerprint, so that further
-- alerts of the same group add to the incident instead of opening another.
CREATE TABLE intake.alert_incidents (
    tenant_id text        NOT NULL,
    key       text        NOT NULL,
    ticket_id text        NOT NULL,
    opened_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- state: inbound mail and alert payloads that could not be processed, kept
-- raw for an admin to inspect and re-process.
CREATE TABLE intake.quarantine (
    tenant_id    text        NOT NULL,
    id           text        NOT NULL,
    kind         text        NOT NULL,
    reason       text        NOT NULL,
    sender       text        NOT NULL DEFAULT '',
    blob_id      text        NOT NULL,
    received_at  timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'held',
    ticket_id    text        NOT NULL DEFAULT '',
    processed_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX quarantine_tenant_received_idx ON intake.quarantine (tenant_id, received_at DESC, id DESC);

-- +goose StatementBegin
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ticket_comments', 'ticket_attachments', 'ticket_links', 'message_ids',
                             'idempotency_keys', 'blobs', 'alert_incidents', 'quarantine'] LOOP
        EXECUTE format('ALTER TABLE intake.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE intake.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON intake.%I
            USING (tenant_id = current_setting('app.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('app.tenant_id', true))$p$, t);
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE intake.quarantine, intake.alert_incidents, intake.blobs, intake.idempotency_keys,
    intake.due_closures, intake.message_ids, intake.ticket_links, intake.ticket_attachments, intake.ticket_comments;
ALTER TABLE intake.ticket_events DROP COLUMN internal;
DROP INDEX intake.tickets_tags_idx, intake.tickets_tenant_assignee_idx, intake.tickets_tenant_status_idx;
ALTER TABLE intake.tickets
    DROP COLUMN category, DROP COLUMN tags, DROP COLUMN config_items, DROP COLUMN watchers,
    DROP COLUMN custom_fields, DROP COLUMN assignee_id, DROP COLUMN pending_reason, DROP COLUMN resolution_code,
    DROP COLUMN resolution_note, DROP COLUMN resolved_at, DROP COLUMN auto_close_at, DROP COLUMN reopen_until,
    DROP COLUMN closed_at, DROP COLUMN first_response_at, DROP COLUMN merged_into, DROP COLUMN follow_up_of,
    DROP COLUMN satisfaction, DROP COLUMN comment_count, DROP COLUMN attachment_count, DROP COLUMN resolutions;
