-- The campaign's rebuild epoch (issue 10, §5: a warm-up racing a persist held in memory).
--
-- Every warm-up that (re)builds a campaign's Redis state from this record bumps it, under the
-- campaign row's lock, before it reads holders and counts; the new value is copied into Redis and
-- stamped on every decision-log entry made from that state. The persist transaction locks the
-- same row and refuses an entry stamped with an older epoch: it was decided by a Redis state the
-- rebuild did not see, so committing it after the rebuild's read would give the rebuilt state
-- (holders, remaining) decisions it never counted. Such a batch commits nothing; its requests
-- are handed to the rebuilt state to be decided again (crates/worker/src/persist.rs).
--
-- Default 0 and NOT NULL: existing campaigns start at 0; log entries written before this change
-- carry no epoch and are persisted as before.

ALTER TABLE campaigns ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
