-- A campaign's waiting room (issue 12, CONTRACT.md `waiting_room`, section *Waiting room*).
--
-- All NULL for a campaign without one; all set for a campaign with one (checked below).
-- admit_per_second: positions admitted per second; an operator may change it while the campaign
--   runs (POST /v1/campaigns/{id}/admission writes here first, then Redis).
-- pass_secs: how long an admitted ticket stays valid. prequeue_secs: how long before opens_at
--   joins are taken (and shuffled at the opening).
-- admission_paused: an operator paused the serving counter.
-- prequeue_seed: 32 random bytes keying the pre-queue shuffle (secret until the opening; anyone
--   given it afterwards can recompute the order, see crates/queue/lua/waiting_room.lua).
-- Every warm-up copies them into the campaign's Redis hash.

ALTER TABLE campaigns
    ADD COLUMN admit_per_second integer
        CONSTRAINT campaigns_admit_per_second CHECK (admit_per_second BETWEEN 1 AND 1000000),
    ADD COLUMN pass_secs integer
        CONSTRAINT campaigns_pass_secs CHECK (pass_secs BETWEEN 10 AND 86400),
    ADD COLUMN prequeue_secs integer
        CONSTRAINT campaigns_prequeue_secs CHECK (prequeue_secs BETWEEN 0 AND 86400),
    ADD COLUMN admission_paused boolean NOT NULL DEFAULT false,
    ADD COLUMN prequeue_seed bytea
        CONSTRAINT campaigns_prequeue_seed CHECK (octet_length(prequeue_seed) = 32),
    ADD CONSTRAINT campaigns_waiting_room_whole CHECK (
        (admit_per_second IS NULL AND pass_secs IS NULL AND prequeue_secs IS NULL
            AND prequeue_seed IS NULL)
        OR (admit_per_second IS NOT NULL AND pass_secs IS NOT NULL AND prequeue_secs IS NOT NULL
            AND prequeue_seed IS NOT NULL));
