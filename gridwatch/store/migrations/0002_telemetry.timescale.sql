-- Telemetry on TimescaleDB: hypertables with one-day chunks, native compression
-- segmented by meter/device, retention through a policy (see apply_retention()).
-- The two helper functions keep the same signatures as the plain variant so the rest of
-- gridwatch does not care which storage it runs on.

CREATE TABLE readings (
    meter_id     text NOT NULL,
    ts           timestamptz NOT NULL,
    v_rms_v      real,
    energy_kwh   double precision,
    seq          bigint,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (meter_id, ts)
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id');
SELECT add_compression_policy('readings', interval '7 days');

CREATE TABLE meter_events (
    meter_id     text NOT NULL,
    ts           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('last_gasp', 'power_restore', 'ping_reply')),
    seq          bigint,
    supply_on    boolean,
    request_id   text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (meter_id, ts, kind)
);
SELECT create_hypertable('meter_events', 'ts', chunk_time_interval => interval '1 day');
ALTER TABLE meter_events SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id');
SELECT add_compression_policy('meter_events', interval '7 days');

CREATE TABLE scada_events (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('open', 'close', 'trip', 'reclose', 'lockout')),
    phases       text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, ts, kind)
);
SELECT create_hypertable('scada_events', 'ts', chunk_time_interval => interval '1 day');
ALTER TABLE scada_events SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id');
SELECT add_compression_policy('scada_events', interval '7 days');

CREATE FUNCTION ensure_telemetry_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;  -- hypertables make chunks themselves

CREATE FUNCTION drop_telemetry_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM drop_chunks('readings', cutoff))::integer
         + (SELECT count(*) FROM drop_chunks('meter_events', cutoff))::integer
         + (SELECT count(*) FROM drop_chunks('scada_events', cutoff))::integer
$$;

INSERT INTO storage_info (key, value) VALUES ('telemetry_storage', 'timescaledb');
