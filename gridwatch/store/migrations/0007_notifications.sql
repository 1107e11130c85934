-- Notifier: the transactional outbox (extends 0001's notifications), preferences, opt-outs,
-- delivery states, push subscriptions, per-customer rate-limit state, customer reports.

-- Outbox columns. status: pending -> sending -> sent (-> delivered/undelivered by callback);
-- sending with an expired lease = outcome unknown, reconciled with the provider before retry;
-- failed (permanent), skipped (opted out at dispatch), superseded (a newer notice replaced it),
-- rejected (bad address at enqueue; kept so operators see it).
ALTER TABLE notifications
    ADD COLUMN version             integer NOT NULL DEFAULT 0,
    ADD COLUMN address             text,
    ADD COLUMN title               text NOT NULL DEFAULT '',
    ADD COLUMN urgent              boolean NOT NULL DEFAULT false,
    ADD COLUMN segments            integer,
    ADD COLUMN not_before          timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_by          text,
    ADD COLUMN lease_until         timestamptz,
    ADD COLUMN attempt_started_at  timestamptz,
    ADD COLUMN reconciled          boolean NOT NULL DEFAULT false,
    ADD COLUMN error_code          text,
    ADD COLUMN last_error          text,
    ADD COLUMN delivery_status     text,
    ADD COLUMN delivery_updated_at timestamptz;

ALTER TABLE notifications ADD CONSTRAINT notifications_status_check CHECK (status IN (
    'pending', 'sending', 'sent', 'failed', 'skipped', 'superseded', 'rejected'));

-- The idempotency key (0001's unique idempotency_key) is customer:outage:kind:version:channel.
-- By change: the enqueue fast path and supersession look notices up by (outage, kind, version).
CREATE INDEX notifications_change_idx ON notifications (outage_id, kind, version);
DROP INDEX notifications_pending_idx;
CREATE INDEX notifications_due_idx ON notifications (not_before) WHERE status = 'pending';
CREATE INDEX notifications_inflight_idx ON notifications (lease_until) WHERE status = 'sending';
CREATE INDEX notifications_provider_idx ON notifications (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX notifications_customer_outage_idx ON notifications (customer_id, outage_id);

-- Per-customer overrides of customers.channels / customers.language, and SMS options.
CREATE TABLE notify_preferences (
    customer_id   text PRIMARY KEY REFERENCES customers (customer_id) ON DELETE CASCADE,
    channels      text[],
    language      text CHECK (language IN ('vi', 'en')),
    ascii_sms     boolean,
    quiet_start   time,
    quiet_end     time,
    timezone      text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Opt-outs are keyed by address (a phone number texts STOP), honoured at enqueue and at dispatch.
CREATE TABLE notify_opt_outs (
    channel       text NOT NULL,
    address       text NOT NULL,
    opted_out_at  timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL DEFAULT 'sms',
    PRIMARY KEY (channel, address)
);

-- Every delivery-state callback, as received (after signature validation).
CREATE TABLE notify_delivery_events (
    event_id      bigserial PRIMARY KEY,
    provider_id   text NOT NULL,
    status        text NOT NULL,
    error_code    text,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notify_delivery_events_provider_idx ON notify_delivery_events (provider_id);

CREATE TABLE notify_push_subscriptions (
    subscription_id  bigserial PRIMARY KEY,
    customer_id      text NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    endpoint         text NOT NULL UNIQUE,
    p256dh           text NOT NULL,
    auth             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_ok_at       timestamptz
);
CREATE INDEX notify_push_subscriptions_customer_idx ON notify_push_subscriptions (customer_id);

-- Fixed-window per-customer, per-channel rate limit for non-urgent notices.
CREATE TABLE notify_rate_state (
    customer_id   text NOT NULL,
    channel       text NOT NULL,
    window_start  timestamptz NOT NULL,
    sent_count    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, channel)
);

-- The last ETR told per outage, so "ETR updated" goes out only on a meaningful change.
CREATE TABLE notify_outage_state (
    outage_id     bigint PRIMARY KEY,
    etr_p50       timestamptz,
    etr_p10       timestamptz,
    etr_p90       timestamptz,
    where_text    text NOT NULL DEFAULT '',
    why_text      text NOT NULL DEFAULT '',
    started_at    timestamptz,
    open          boolean NOT NULL DEFAULT true,
    version       integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Customers texting OUT: evidence for the detectors. 0004 (outages) defines customer_reports;
-- the same shape is created here only if it is absent, and the SMS path adds what it needs
-- to store a report once per Twilio message (retried webhooks) with the sender's number.
CREATE TABLE IF NOT EXISTS customer_reports (
    report_id    bigserial PRIMARY KEY,
    customer_id  text,
    meter_id     text,
    reported_at  timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('out', 'on')),
    note         text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    CHECK (customer_id IS NOT NULL OR meter_id IS NOT NULL)
);
ALTER TABLE customer_reports
    ADD COLUMN IF NOT EXISTS phone_e164  text,
    ADD COLUMN IF NOT EXISTS provider_id text;
CREATE UNIQUE INDEX IF NOT EXISTS customer_reports_provider_idx
    ON customer_reports (provider_id) WHERE provider_id IS NOT NULL;
