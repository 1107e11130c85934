-- Control API: hashed API tokens, the operator audit log, planned-work changes for the
-- notifier, the live-stream trigger on outages, and indexes for the outage list filters.

CREATE TABLE api_tokens (
    token_id      bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- sha256 of a 256-bit random token: a stolen table gives no usable token.
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

CREATE TABLE audit_log (
    audit_id        bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_token_id  bigint REFERENCES api_tokens (token_id) ON DELETE SET NULL,
    actor           text NOT NULL,
    role            text NOT NULL,
    action          text NOT NULL,
    target_kind     text NOT NULL,
    target_id       text NOT NULL,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_target_idx ON audit_log (target_kind, target_id, at);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- Planned work edited through the API. A cancelled job leaves planned_outages (so
-- detection stops suppressing inside its window) and lives on in the events below.
ALTER TABLE planned_outages
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN version          integer NOT NULL DEFAULT 0,
    ADD COLUMN notice_override  boolean NOT NULL DEFAULT false,
    ADD COLUMN created_by       text NOT NULL DEFAULT '';

-- The hook for customer notices about planned work: one row per create/change/cancel,
-- consumed by the notifier (handled_at set when its notices are enqueued).
CREATE TABLE planned_outage_events (
    event_id     bigserial PRIMARY KEY,
    planned_id   text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('created', 'changed', 'cancelled')),
    version      integer NOT NULL,
    device_id    text NOT NULL,
    zone         text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    reason       text NOT NULL,
    short_notice boolean NOT NULL DEFAULT false,
    at           timestamptz NOT NULL DEFAULT now(),
    handled_at   timestamptz
);
CREATE INDEX planned_outage_events_unhandled_idx ON planned_outage_events (event_id)
    WHERE handled_at IS NULL;

-- Live stream: every outage insert or real change is announced. The channel is shared by
-- every schema of the database, so the payload names the schema and listeners filter.
CREATE FUNCTION gridwatch_notify_outage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gridwatch_outages', json_build_object(
        'schema', TG_TABLE_SCHEMA,
        'op', lower(TG_OP),
        'outage_id', NEW.outage_id,
        'state', NEW.state,
        'zone', left(NEW.zone, 200),
        'device_id', left(NEW.device_id, 200),
        'customers_affected', NEW.customers_affected,
        'updated_at', NEW.updated_at)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER outages_notify_insert AFTER INSERT ON outages
    FOR EACH ROW EXECUTE FUNCTION gridwatch_notify_outage();
CREATE TRIGGER outages_notify_update AFTER UPDATE ON outages
    FOR EACH ROW WHEN (OLD IS DISTINCT FROM NEW) EXECUTE FUNCTION gridwatch_notify_outage();

-- Outage list: keyset order (started_at DESC, outage_id DESC), with and without filters.
CREATE INDEX outages_list_idx ON outages (started_at DESC, outage_id DESC);
CREATE INDEX outages_state_list_idx ON outages (state, started_at DESC, outage_id DESC);
CREATE INDEX outages_zone_list_idx ON outages (zone, started_at DESC, outage_id DESC);
CREATE INDEX outages_device_idx ON outages (device_id);
CREATE INDEX outage_meters_customer_idx ON outage_meters (customer_id);
CREATE INDEX notifications_customer_idx ON notifications (customer_id, created_at);
CREATE INDEX notifications_outage_idx ON notifications (outage_id, created_at);
-- Topology search by id or name prefix (case-insensitive on names).
CREATE INDEX devices_id_prefix_idx ON devices (device_id text_pattern_ops);
CREATE INDEX devices_name_prefix_idx ON devices (lower(name) text_pattern_ops);
CREATE INDEX meters_zone_idx ON meters (zone);
