-- Stock shards (issue 14, CONTRACT.md `shards`), fixed at creation: 1 ..= 64, default 1.
--
-- Every warm-up copies it into the campaign's Redis hash (`shards`), where the view reads it.
-- Today decisions run on one slot whatever the count (README, *Stock shards*): FIFO over the
-- whole campaign implies FIFO per shard, and no stock sits in a shard that could strand it.
-- Default 1 and NOT NULL: existing campaigns keep the one shard they always had.

ALTER TABLE campaigns ADD COLUMN shards smallint NOT NULL DEFAULT 1
    CONSTRAINT campaigns_shards CHECK (shards BETWEEN 1 AND 64);
