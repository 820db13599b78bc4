-- The highest coupon sequence number a campaign has recorded, found without reading its rows:
-- a warm-up continues Redis's sequence past it, and `rushline reconcile` and the persister
-- compare Redis's sequence with it (a Redis behind the record). Without this index
-- `max(coupon_seq) … WHERE campaign_id = $1` read every row of every campaign (a sequential scan
-- of `requests`); with it PostgreSQL reads one index entry (Index Only Scan Backward + Limit,
-- checked by crates/store/tests/high_water.rs).
--
-- Partial (issued rows only carry a sequence number), so it costs sold-out storms nothing.
-- A plain CREATE INDEX blocks writes to `requests` while it builds: on a large existing table,
-- create it beforehand with CREATE INDEX CONCURRENTLY under the same name (IF NOT EXISTS then
-- makes this migration a no-op).

CREATE INDEX IF NOT EXISTS requests_campaign_coupon_seq
    ON requests (campaign_id, coupon_seq) WHERE coupon_seq IS NOT NULL;
