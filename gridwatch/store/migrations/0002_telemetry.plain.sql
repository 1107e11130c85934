-- Telemetry on plain PostgreSQL: declarative daily range partitions on event time,
-- BRIN on ts (cheap, fits append-mostly time order), uniqueness for idempotent writes.
-- Partitions are made on demand by ensure_telemetry_partitions(); retention drops whole
-- partitions with drop_telemetry_partitions_before().

CREATE TABLE readings (
    meter_id     text NOT NULL,
    ts           timestamptz NOT NULL,
    v_rms_v      real,
    energy_kwh   double precision,
    seq          bigint,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (meter_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX readings_ts_brin ON readings USING brin (ts);

CREATE TABLE meter_events (
    meter_id     text NOT NULL,
    ts           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('last_gasp', 'power_restore', 'ping_reply')),
    seq          bigint,
    supply_on    boolean,
    request_id   text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (meter_id, ts, kind)
) PARTITION BY RANGE (ts);
CREATE INDEX meter_events_ts_brin ON meter_events USING brin (ts);

CREATE TABLE scada_events (
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('open', 'close', 'trip', 'reclose', 'lockout')),
    phases       text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, ts, kind)
) PARTITION BY RANGE (ts);
CREATE INDEX scada_events_ts_brin ON scada_events USING brin (ts);

CREATE FUNCTION ensure_telemetry_partitions(from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date := (from_ts AT TIME ZONE 'UTC')::date;
    last_day date := (to_ts AT TIME ZONE 'UTC')::date;
    parent text;
    part text;
    made integer := 0;
BEGIN
    WHILE day <= last_day LOOP
        FOREACH parent IN ARRAY ARRAY['readings', 'meter_events', 'scada_events'] LOOP
            part := parent || '_p' || to_char(day, 'YYYYMMDD');
            IF to_regclass(quote_ident(current_schema()) || '.' || quote_ident(part)) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    part, parent,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'));
                made := made + 1;
            END IF;
        END LOOP;
        day := day + 1;
    END LOOP;
    RETURN made;
END $$;

CREATE FUNCTION drop_telemetry_partitions_before(cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    dropped integer := 0;
BEGIN
    FOR rec IN
        SELECT c.relname AS part
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE n.nspname = current_schema()
          AND p.relname IN ('readings', 'meter_events', 'scada_events')
          AND c.relname ~ '_p[0-9]{8}$'
          -- a partition holds one UTC day; drop it once that whole day is past the cutoff
          AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
              <= cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', rec.part);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

INSERT INTO storage_info (key, value) VALUES ('telemetry_storage', 'plain');
