-- Outage detection: engine keys, per-meter restoration, momentaries, planned outages,
-- customer reports. Extends the outages / outage_timeline tables of 0001.

ALTER TABLE outages
    ADD COLUMN engine_key          text,
    ADD COLUMN parent_outage_id    bigint REFERENCES outages (outage_id) ON DELETE SET NULL,
    ADD COLUMN meters_restored     integer NOT NULL DEFAULT 0,
    ADD COLUMN customers_restored  integer NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX outages_engine_key_idx ON outages (engine_key);

-- Order of entries with the same event time.
ALTER TABLE outage_timeline ADD COLUMN seq bigserial;
CREATE INDEX outage_timeline_seq_idx ON outage_timeline (outage_id, at, seq);

CREATE TABLE outage_meters (
    outage_id    bigint NOT NULL REFERENCES outages (outage_id) ON DELETE CASCADE,
    meter_id     text NOT NULL,
    customer_id  text,
    status       text NOT NULL DEFAULT 'out'
                 CHECK (status IN ('out', 'restored', 'transferred', 'unverified')),
    restored_at  timestamptz,
    PRIMARY KEY (outage_id, meter_id)
);
CREATE INDEX outage_meters_meter_idx ON outage_meters (meter_id);

CREATE TABLE momentaries (
    momentary_id        bigserial PRIMARY KEY,
    device_id           text NOT NULL,
    zone                text NOT NULL,
    started_at          timestamptz NOT NULL,
    ended_at            timestamptz NOT NULL CHECK (ended_at >= started_at),
    meters_affected     integer NOT NULL CHECK (meters_affected >= 0),
    customers_affected  integer NOT NULL CHECK (customers_affected >= 0),
    cause               text NOT NULL
);
CREATE INDEX momentaries_started_idx ON momentaries (started_at);

CREATE TABLE planned_outages (
    planned_id  text PRIMARY KEY CHECK (planned_id ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    device_id   text NOT NULL,
    zone        text NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX planned_outages_window_idx ON planned_outages (starts_at, ends_at);

CREATE TABLE customer_reports (
    report_id    bigserial PRIMARY KEY,
    customer_id  text,
    meter_id     text,
    reported_at  timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('out', 'on')),
    note         text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    CHECK (customer_id IS NOT NULL OR meter_id IS NOT NULL)
);
CREATE INDEX customer_reports_at_idx ON customer_reports (reported_at);
