-- The identity schema. Two kinds of tables:
--  * read models of the identity__directory_v1 projection (tenants,
--    tenant_directory, users, user_grants, groups, api_tokens): rebuildable
--    from the IDENTITY stream at any time;
--  * state the stream must not hold (secrets, sessions, counters):
--    credentials, refresh_tokens, password_resets, signing_keys,
--    login_attempts, api_token_usage. A rebuild never touches them.
-- Every table with tenant data forces row-level security on
-- current_setting('app.tenant_id'); services act as a role that owns none
-- of them (pgdb.AppRole).

-- +goose Up
CREATE TABLE tenants (
    id          text        PRIMARY KEY,
    slug        text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    kind        text        NOT NULL,
    parent_id   text,
    operator    boolean     NOT NULL DEFAULT false,
    time_zone   text        NOT NULL,
    locale      text        NOT NULL,
    status      text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint      NOT NULL,
    last_seq    bigint      NOT NULL
);
CREATE INDEX tenants_parent_idx ON tenants (parent_id, slug);
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
-- A tenant sees itself and its children (a provider its clients).
CREATE POLICY tenant_isolation ON tenants
    USING (id = current_setting('app.tenant_id', true) OR parent_id = current_setting('app.tenant_id', true))
    WITH CHECK (id = current_setting('app.tenant_id', true) OR parent_id = current_setting('app.tenant_id', true));

-- Slug -> tenant, for sign-in before the tenant is known. Not tenant data:
-- which slugs exist is no secret (sign-in answers alike either way).
CREATE TABLE tenant_directory (
    slug      text PRIMARY KEY,
    tenant_id text NOT NULL UNIQUE,
    status    text NOT NULL
);

CREATE TABLE users (
    tenant_id  text        NOT NULL,
    id         text        NOT NULL,
    email      text        NOT NULL,
    name       text        NOT NULL,
    roles      text[]      NOT NULL,
    groups     text[]      NOT NULL,
    locale     text        NOT NULL,
    time_zone  text        NOT NULL,
    status     text        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    bigint      NOT NULL,
    last_seq   bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);
CREATE INDEX users_tenant_name_idx ON users (tenant_id, name, id);
CREATE INDEX users_groups_idx ON users USING gin (groups);
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- Client tenants a provider's user may act in.
CREATE TABLE user_grants (
    tenant_id        text        NOT NULL,
    user_id          text        NOT NULL,
    client_tenant_id text        NOT NULL,
    role             text        NOT NULL,
    granted_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id, client_tenant_id)
);
ALTER TABLE user_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON user_grants
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE groups (
    tenant_id  text        NOT NULL,
    id         text        NOT NULL,
    name       text        NOT NULL,
    tier       smallint    NOT NULL,
    skills     text[]      NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    bigint      NOT NULL,
    last_seq   bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX groups_tenant_name_idx ON groups (tenant_id, name, id);
ALTER TABLE groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE groups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON groups
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- API tokens without their secret (which only the stream's hash knows).
CREATE TABLE api_tokens (
    tenant_id  text        NOT NULL,
    id         text        NOT NULL,
    name       text        NOT NULL,
    scopes     text[]      NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz,
    last_seq   bigint      NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX api_tokens_tenant_created_idx ON api_tokens (tenant_id, created_at DESC, id DESC);
ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_tokens
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- State: password hashes (argon2id, PHC strings).
CREATE TABLE credentials (
    tenant_id     text        NOT NULL,
    user_id       text        NOT NULL,
    password_hash text        NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
ALTER TABLE credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credentials
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- State: refresh tokens (SHA-256 of the secret), one family per session.
-- A token is spent once used; presenting a spent one revokes its family.
CREATE TABLE refresh_tokens (
    tenant_id   text        NOT NULL,
    id          text        NOT NULL,
    family_id   text        NOT NULL,
    user_id     text        NOT NULL,
    secret_hash text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (tenant_id, family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (tenant_id, user_id) WHERE revoked_at IS NULL;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON refresh_tokens
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- State: single-use password-reset tokens (SHA-256 of the secret).
CREATE TABLE password_resets (
    tenant_id   text        NOT NULL,
    id          text        NOT NULL,
    user_id     text        NOT NULL,
    secret_hash text        NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON password_resets
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- State: when each API token was last used (advisory, to the minute).
CREATE TABLE api_token_usage (
    tenant_id    text        NOT NULL,
    token_id     text        NOT NULL,
    last_used_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, token_id)
);
ALTER TABLE api_token_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_token_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_token_usage
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

-- State: the Ed25519 keys access tokens are signed with, the private half
-- sealed with a subkey of OPSDESK_SECRET_KEY. Installation-wide.
CREATE TABLE signing_keys (
    kid            text        PRIMARY KEY,
    public_key     bytea       NOT NULL,
    sealed_private text        NOT NULL,
    created_at     timestamptz NOT NULL,
    retired_at     timestamptz
);

-- State: failed sign-ins per account and per client address, keyed by a
-- SHA-256 so no address or e-mail is stored. Installation-wide.
CREATE TABLE login_attempts (
    key           text        PRIMARY KEY,
    failures      integer     NOT NULL,
    first_failure timestamptz NOT NULL,
    locked_until  timestamptz
);

-- +goose Down
DROP TABLE login_attempts;
DROP TABLE signing_keys;
DROP TABLE api_token_usage;
DROP TABLE password_resets;
DROP TABLE refresh_tokens;
DROP TABLE credentials;
DROP TABLE api_tokens;
DROP TABLE groups;
DROP TABLE user_grants;
DROP TABLE users;
DROP TABLE tenant_directory;
DROP TABLE tenants;
