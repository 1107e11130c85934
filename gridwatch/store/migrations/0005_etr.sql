-- Restoration-time estimation: fitted models, every ETR issued (with what produced it),
-- operator/crew overrides, and what customers were last told.

CREATE TABLE etr_models (
    version        text PRIMARY KEY,
    fitted_at      timestamptz NOT NULL,
    history_from   timestamptz,
    history_to     timestamptz,
    n_outages      integer NOT NULL CHECK (n_outages >= 0),
    params         jsonb NOT NULL,
    active         boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- At most one active model; activating a new one deactivates the old in one transaction.
CREATE UNIQUE INDEX etr_models_one_active_idx ON etr_models (active) WHERE active;

CREATE TABLE etr_history (
    etr_id         bigserial PRIMARY KEY,
    outage_id      bigint NOT NULL REFERENCES outages (outage_id) ON DELETE CASCADE,
    computed_at    timestamptz NOT NULL,
    p10            timestamptz NOT NULL,
    p50            timestamptz NOT NULL,
    p90            timestamptz NOT NULL,
    source         text NOT NULL CHECK (source IN ('model', 'backlog', 'override')),
    model_version  text,
    inputs         jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK (p10 <= p50 AND p50 <= p90)
);
CREATE INDEX etr_history_outage_idx ON etr_history (outage_id, computed_at);

CREATE TABLE etr_overrides (
    override_id     bigserial PRIMARY KEY,
    outage_id       bigint NOT NULL REFERENCES outages (outage_id) ON DELETE CASCADE,
    etr_at          timestamptz NOT NULL,
    reason          text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    set_by          text NOT NULL CHECK (length(set_by) BETWEEN 1 AND 200),
    set_at          timestamptz NOT NULL,
    cleared_at      timestamptz,
    cleared_reason  text
);
-- One override in force per outage.
CREATE UNIQUE INDEX etr_overrides_active_idx ON etr_overrides (outage_id) WHERE cleared_at IS NULL;

CREATE TABLE etr_notices (
    outage_id      bigint PRIMARY KEY REFERENCES outages (outage_id) ON DELETE CASCADE,
    first_at       timestamptz NOT NULL,
    last_at        timestamptz NOT NULL,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    p50            timestamptz NOT NULL,
    updates_sent   integer NOT NULL DEFAULT 0 CHECK (updates_sent >= 0)
);
