-- Notifier: Zalo ZNS and per-customer channel order with fallback (issue #14).

-- A customer's channels entry 'zns>sms' is one ordered chain: the first link's notice goes
-- into the outbox at once; each later link waits here, fully rendered, until the link before
-- it cannot deliver (failed, rejected, skipped, or a delivery receipt saying undelivered) or
-- no receipt arrives within the configured time. Promotion inserts the held row into the
-- outbox under its own idempotency key (ON CONFLICT DO NOTHING), so a crash anywhere in the
-- fallback never queues it twice. A held row whose predecessor was delivered, or superseded,
-- is marked not_needed and kept, so operators see which fallbacks were never used.
CREATE TABLE notify_fallback_queue (
    idempotency_key  text PRIMARY KEY,
    after_key        text NOT NULL,          -- the previous link's outbox idempotency key
    customer_id      text NOT NULL,
    outage_id        bigint REFERENCES outages (outage_id) ON DELETE CASCADE,
    kind             text NOT NULL,
    version          integer NOT NULL,
    channel          text NOT NULL,
    language         text NOT NULL,
    address          text,
    title            text NOT NULL DEFAULT '',
    body             text NOT NULL,
    urgent           boolean NOT NULL DEFAULT false,
    segments         integer,
    not_before       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    state            text NOT NULL DEFAULT 'held'
                     CHECK (state IN ('held', 'promoted', 'not_needed')),
    reason           text,
    decided_at       timestamptz
);
CREATE INDEX notify_fallback_held_idx ON notify_fallback_queue (after_key) WHERE state = 'held';
CREATE INDEX notify_fallback_outage_idx ON notify_fallback_queue (outage_id);

-- The Zalo Official Account's token pair. Zalo rotates the refresh token on every refresh
-- (the old one stops working), so several dispatcher processes must share one pair: the row
-- is locked while one of them refreshes, and the others read what it stored.
CREATE TABLE notify_zns_token (
    oa_id          text PRIMARY KEY,
    access_token   text NOT NULL,
    refresh_token  text NOT NULL,
    expires_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
