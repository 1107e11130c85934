-- Crew status per outage, as the operator or the crew reports it: dispatched or on site
-- (and the cause found there). The ETR's crew queue takes outages with a crew as in work;
-- a reported cause replaces detection's provenance in the outage's ETR class.

CREATE TABLE etr_crew_status (
    outage_id    bigint PRIMARY KEY REFERENCES outages (outage_id) ON DELETE CASCADE,
    status       text NOT NULL CHECK (status IN ('dispatched', 'on_site', 'released')),
    cause        text CHECK (cause IS NULL OR length(cause) BETWEEN 1 AND 100),
    set_by       text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 200),
    set_at       timestamptz NOT NULL
);
