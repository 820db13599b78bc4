-- The record. Redis decides; PostgreSQL remembers, and its constraints are the last line of
-- defence for the guarantees (CONTRACT.md): whatever Redis does, no row set violating them can
-- commit. Applied by rushline-api at start-up (sqlx holds an advisory lock, so replicas starting
-- together apply it once). Never edit a migration once released; add a new one.

CREATE TABLE campaigns (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9_-]{1,64}$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    stock       bigint NOT NULL CHECK (stock BETWEEN 1 AND 100000000),
    -- Issued rows of this campaign, kept exact by the triggers below. With the CHECK it makes
    -- guarantee 1 a database constraint: a transaction that would issue past stock fails.
    issued      bigint NOT NULL DEFAULT 0,
    opens_at    timestamptz NOT NULL,
    closes_at   timestamptz,
    -- Secret key of the campaign's coupon-code permutation (see crates/queue/lua/decide.lua).
    code_key    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campaigns_window CHECK (closes_at IS NULL OR closes_at >= opens_at),
    CONSTRAINT campaigns_issued_within_stock CHECK (issued BETWEEN 0 AND stock)
);

-- One row per decided request. Queued requests live only in Redis.
CREATE TABLE requests (
    request_id   uuid PRIMARY KEY,                 -- re-persisting a batch is a no-op
    campaign_id  text NOT NULL REFERENCES campaigns (id),
    user_id      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('issued', 'sold_out', 'duplicate')),
    coupon_code  text,
    coupon_seq   bigint,                           -- lets a rebuilt Redis continue past every code
    decided_at   timestamptz NOT NULL,
    persisted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT requests_code_iff_issued CHECK ((status = 'issued') = (coupon_code IS NOT NULL))
);

-- Guarantee 2: at most one issued coupon per (campaign, user).
CREATE UNIQUE INDEX requests_one_coupon_per_user ON requests (campaign_id, user_id) WHERE status = 'issued';
-- Guarantee 3: codes are unique within a campaign.
CREATE UNIQUE INDEX requests_unique_code ON requests (campaign_id, coupon_code) WHERE coupon_code IS NOT NULL;

-- Keep campaigns.issued exact. Statement-level with transition tables: one UPDATE per batch
-- insert, not per row.
CREATE FUNCTION requests_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaigns c SET issued = c.issued + n.cnt
    FROM (SELECT campaign_id, count(*) AS cnt FROM new_rows WHERE status = 'issued' GROUP BY campaign_id) n
    WHERE c.id = n.campaign_id;
    RETURN NULL;
END $$;

CREATE FUNCTION requests_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaigns c SET issued = c.issued + n.delta
    FROM (SELECT campaign_id, sum(d) AS delta FROM (
              SELECT campaign_id, 1 AS d FROM new_rows WHERE status = 'issued'
              UNION ALL
              SELECT campaign_id, -1 AS d FROM old_rows WHERE status = 'issued') x
          GROUP BY campaign_id) n
    WHERE c.id = n.campaign_id AND n.delta <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION requests_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaigns c SET issued = c.issued - n.cnt
    FROM (SELECT campaign_id, count(*) AS cnt FROM old_rows WHERE status = 'issued' GROUP BY campaign_id) n
    WHERE c.id = n.campaign_id;
    RETURN NULL;
END $$;

CREATE TRIGGER requests_issued_on_insert AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION requests_count_inserted();
CREATE TRIGGER requests_issued_on_update AFTER UPDATE ON requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION requests_count_updated();
CREATE TRIGGER requests_issued_on_delete AFTER DELETE ON requests
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION requests_count_deleted();
