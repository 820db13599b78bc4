-- The stock-lease ledger of sharded campaigns (issue 14; crates/store/src/leases.rs). Not yet
-- used by the engine: a future coordinator moves stock between the record and a campaign's shards
-- only through it.
--
-- campaigns.unleased: the stock no shard holds, for a campaign with shards > 1; NULL for one with
--   one shard, whose whole stock is its single slot's as before (no ledger, no moves). Set to
--   stock at creation; add-stock raises both. Never negative (checked here), so no grant can
--   hand out stock the record does not have.
-- stock_moves: every movement of stock between the record and a shard, one row per idempotency
--   id (move_id, chosen by the mover before it acts, so a mover that crashed replays by id on
--   both sides). delta > 0: a lease, record -> shard; delta < 0: stock a shard handed back.
--   state 'granted': the record's side is done, the shard's (Redis) side not yet confirmed;
--   'applied': both sides done. Returns are recorded 'applied' (the shard gave the stock up
--   before the record took it back).
--
-- For every sharded campaign: unleased + sum(delta) = stock, at every commit (every change of one
-- side changes the other in the same transaction, under the campaign row's lock).

ALTER TABLE campaigns
    ADD COLUMN unleased bigint
        CONSTRAINT campaigns_unleased_not_negative CHECK (unleased >= 0),
    ADD CONSTRAINT campaigns_unleased_iff_sharded CHECK ((shards > 1) = (unleased IS NOT NULL));

CREATE TABLE stock_moves (
    move_id uuid PRIMARY KEY,
    campaign_id text NOT NULL REFERENCES campaigns (id),
    shard smallint NOT NULL CONSTRAINT stock_moves_shard CHECK (shard BETWEEN 0 AND 63),
    delta bigint NOT NULL CONSTRAINT stock_moves_delta_not_zero CHECK (delta <> 0),
    state text NOT NULL CONSTRAINT stock_moves_state CHECK (state IN ('granted', 'applied')),
    created_at timestamptz NOT NULL DEFAULT now(),
    applied_at timestamptz,
    CONSTRAINT stock_moves_applied_at CHECK ((state = 'applied') = (applied_at IS NOT NULL))
);

-- A shard's allocation (sum of its applied deltas) and the campaign's totals.
CREATE INDEX stock_moves_campaign_shard ON stock_moves (campaign_id, shard);
-- Moves to replay after a crash: few at any time, so a partial index stays small.
CREATE INDEX stock_moves_granted ON stock_moves (campaign_id, created_at) WHERE state = 'granted';
