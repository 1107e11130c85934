-- What an outage covers: "device" (a protective device and every meter beneath it) or
-- "premise" (only the service points whose own meters said dark, on their device: a
-- one-house fault no device outage explains). Operators and the ETR read it; a restarted
-- engine takes a premise outage back as one.

ALTER TABLE outages
    ADD COLUMN scope text NOT NULL DEFAULT 'device' CHECK (scope IN ('device', 'premise'));
