-- Who decides a campaign's requests (issue 13 §4, CONTRACT.md `decide`), fixed at creation.
--
-- 'queued': the accept step queues each request and a worker decides it (the API answers 202).
-- 'instant': the accept step (crates/queue/lua/accept.lua) decides each request itself, by the
-- same rule and in arrival order, and the API answers 200 with the final status; workers only
-- persist. Every warm-up copies it into the campaign's Redis hash, where accept.lua reads it.
--
-- Default 'queued' and NOT NULL: existing campaigns keep the only mode they ever had.

ALTER TABLE campaigns ADD COLUMN decide text NOT NULL DEFAULT 'queued'
    CONSTRAINT campaigns_decide_mode CHECK (decide IN ('queued', 'instant'));
