-- Planned work -> customer notices. notifications.outage_id references outages, so each
-- planned job gets an outages row (planned = true), keyed by its text planned_id here.
--
-- The row's state follows the window on event time: 'scheduled' (announced, nobody out yet:
-- meters/customers_affected stay 0) -> 'confirmed' from starts_at -> 'restored' at ends_at;
-- 'cancelled' when the job is called off before it starts.
ALTER TABLE outages DROP CONSTRAINT outages_state_check;
ALTER TABLE outages ADD CONSTRAINT outages_state_check CHECK (state IN (
    'scheduled', 'predicted', 'confirmed', 'partially_restored', 'restored', 'cancelled'));

CREATE TABLE planned_notice_outages (
    planned_id  text PRIMARY KEY,
    outage_id   bigint NOT NULL UNIQUE REFERENCES outages (outage_id) ON DELETE CASCADE,
    version     integer NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    -- The job's scope when last announced (as-built subtree of its device).
    meters      integer NOT NULL DEFAULT 0 CHECK (meters >= 0),
    customers   integer NOT NULL DEFAULT 0 CHECK (customers >= 0),
    cancelled   boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- The window loop looks for rows to start and to end.
CREATE INDEX planned_notice_outages_open_idx ON planned_notice_outages (starts_at, ends_at)
    WHERE NOT cancelled;

-- What consuming each event did: notified (notices enqueued), rejected (with the reason;
-- the event is kept, the consumer moves on) or stale (a newer version was handled first,
-- or the window was over before the event was consumed).
ALTER TABLE planned_outage_events
    ADD COLUMN outage_id  bigint REFERENCES outages (outage_id) ON DELETE SET NULL,
    ADD COLUMN outcome    text CHECK (outcome IN ('notified', 'rejected', 'stale')),
    ADD COLUMN detail     text CHECK (length(detail) <= 2000);
