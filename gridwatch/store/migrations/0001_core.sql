-- Core domain tables: topology, customers, outages, notifications, dead letters.
-- Runs inside the configured schema (search_path is set by the migration runner).

CREATE TABLE storage_info (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE devices (
    device_id      text PRIMARY KEY,
    -- Named FKs: save_topology drops and re-adds them around its bulk COPY (one
    -- validating join instead of a trigger per row).
    parent_id      text CONSTRAINT devices_parent_fk REFERENCES devices (device_id)
                       DEFERRABLE INITIALLY DEFERRED,
    kind           text NOT NULL CHECK (kind IN (
                       'substation', 'breaker', 'recloser', 'sectionalizer', 'switch',
                       'fuse', 'transformer')),
    zone           text NOT NULL,
    name           text NOT NULL DEFAULT '',
    normally_open  boolean NOT NULL DEFAULT false,
    is_open        boolean NOT NULL DEFAULT false,
    has_scada      boolean NOT NULL DEFAULT false,
    lat            double precision,
    lon            double precision
);
CREATE INDEX devices_parent_idx ON devices (parent_id);
CREATE INDEX devices_zone_idx ON devices (zone);

-- A normally-open tie switch joins two branches; closing it (and opening another)
-- re-parents part of the tree. alt_parent_id is the side it can feed from.
CREATE TABLE device_ties (
    device_id      text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    alt_parent_id  text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE
);

CREATE TABLE customers (
    customer_id  text PRIMARY KEY,
    -- Deferrable so a re-import may move an account number between customers.
    account_no   text NOT NULL UNIQUE DEFERRABLE INITIALLY IMMEDIATE,
    name         text NOT NULL DEFAULT '',
    phone_e164   text CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    language     text NOT NULL DEFAULT 'vi' CHECK (language IN ('vi', 'en')),
    channels     text[] NOT NULL DEFAULT ARRAY['sms']::text[],
    critical     boolean NOT NULL DEFAULT false
);

CREATE TABLE meters (
    meter_id     text PRIMARY KEY,
    device_id    text NOT NULL CONSTRAINT meters_device_fk REFERENCES devices (device_id)
                     DEFERRABLE INITIALLY DEFERRED,
    customer_id  text CONSTRAINT meters_customer_fk REFERENCES customers (customer_id)
                     ON DELETE SET NULL,
    zone         text NOT NULL
);
CREATE INDEX meters_device_idx ON meters (device_id);
CREATE INDEX meters_customer_idx ON meters (customer_id);

CREATE TABLE outages (
    outage_id          bigserial PRIMARY KEY,
    device_id          text NOT NULL,
    zone               text NOT NULL,
    state              text NOT NULL CHECK (state IN (
                           'predicted', 'confirmed', 'partially_restored', 'restored',
                           'cancelled')),
    cause              text,
    planned            boolean NOT NULL DEFAULT false,
    started_at         timestamptz NOT NULL,
    confirmed_at       timestamptz,
    restored_at        timestamptz,
    confidence         real NOT NULL DEFAULT 0,
    meters_affected    integer NOT NULL DEFAULT 0,
    customers_affected integer NOT NULL DEFAULT 0,
    etr_p10            timestamptz,
    etr_p50            timestamptz,
    etr_p90            timestamptz,
    etr_model_version  text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outages_open_idx ON outages (state) WHERE state NOT IN ('restored', 'cancelled');
CREATE INDEX outages_zone_started_idx ON outages (zone, started_at);

CREATE TABLE outage_timeline (
    outage_id  bigint NOT NULL REFERENCES outages (outage_id) ON DELETE CASCADE,
    at         timestamptz NOT NULL,
    kind       text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX outage_timeline_idx ON outage_timeline (outage_id, at);

CREATE TABLE notifications (
    notification_id  bigserial PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    customer_id      text NOT NULL,
    outage_id        bigint REFERENCES outages (outage_id) ON DELETE SET NULL,
    kind             text NOT NULL,
    channel          text NOT NULL,
    language         text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    provider_id      text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notifications_pending_idx ON notifications (created_at) WHERE status = 'pending';

-- What ingest rejected, for operators; the MQTT dead-letter topic carries the same.
CREATE TABLE dead_letters (
    dead_letter_id  bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    reason          text NOT NULL,
    payload         bytea NOT NULL
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
