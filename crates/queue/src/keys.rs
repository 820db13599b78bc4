//! Every Redis key and channel rushline uses, and nothing else builds key names.
//!
//! ```text
//! rushline:[<ns>:]{tag}:c:<campaign>        hash    campaign state (ready, stock, remaining, issued, seq, key, window, epoch, decide; warming,
//!                                                   warm_until, rebuild while a warm-up runs)
//!                                                   and refusal tallies (sold_out, duplicate) while exact
//! rushline:[<ns>:]{tag}:c:<campaign>:q      list    queued requests, "request_id\tuser_id", FIFO
//! rushline:[<ns>:]{tag}:c:<campaign>:h      hash    coupon holders, user_id -> request_id
//! rushline:[<ns>:]{tag}:c:<campaign>:log    stream  decisions not yet acknowledged as persisted (d: lines, e: epoch)
//! rushline:[<ns>:]{tag}:c:<campaign>:dirty  string  "persisters were told about new log entries"
//! rushline:[<ns>:]{tag}:c:<campaign>:dead   stream  dead letters: log entries no worker can persist
//! rushline:[<ns>:]{tag}:c:<campaign>:i:<k>  string  idempotency key -> "request_id\tuser_id" (TTL)
//! rushline:[<ns>:]{tag}:c:<campaign>:wr     hash    waiting room: joined, through, token bucket, pre-queue frozen
//! rushline:[<ns>:]{tag}:c:<campaign>:wr:pos hash    waiting room: user_id -> position (handed out after the opening)
//! rushline:[<ns>:]{tag}:c:<campaign>:wr:pre zset    waiting room: pre-queued users, ordered by sha1(seed, user)
//! rushline:[<ns>:]{tag}:c:<campaign>:wr:steps zset  waiting room: admission steps (through -> ms)
//! rushline:[<ns>:]{tag}:c:<campaign>:wr:flow list   waiting room: (ms, through) samples for the measured outflow
//! rushline:[<ns>:]{tag}:r:<request_id>      string  the request's status record (TTL once persisted)
//! rushline:[<ns>:]{tag}:c:<campaign>:rl:u:<user>  string  per-(campaign, user) rate limit: GCRA TAT (µs, PX)
//! rushline:[<ns>:]rl:ip:{<address>}         string  per-client-address rate limit: GCRA TAT (µs, PX);
//!                                                   the address (IPv6: its /64) is its own slot
//! rushline:[<ns>:]campaigns                 set     campaign ids workers sweep
//! rushline:[<ns>:]dead-letters              set     campaign ids that have (had) dead letters
//! rushline:[<ns>:]work                      channel campaign ids with new queue or log entries
//! rushline:[<ns>:]decided                   channel space-separated ids of decided requests
//! rushline:[<ns>:]ticket-key                string  the waiting-room ticket key replicas share when
//!                                                   RUSHLINE_TICKET_KEYS is unset (development only)
//! ```
//!
//! `{tag}` is the campaign's [`SlotTag`], also embedded in each request
//! id, so a request's status key is found from its id alone and lives in its campaign's slot.

use rushline_domain::{CampaignId, RequestId, SlotTag, UserId};

use crate::QueueError;

/// The key names of one rushline deployment.
#[derive(Debug, Clone)]
pub struct Keys {
    root: String,
}

/// The keys of one campaign.
#[derive(Debug, Clone)]
pub struct CampaignKeys {
    /// Campaign state hash.
    pub meta: String,
    /// FIFO queue of undecided requests.
    pub queue: String,
    /// Coupon holders hash.
    pub holders: String,
    /// Decision log stream.
    pub log: String,
    /// Persister notification flag.
    pub dirty: String,
    /// Dead-letter stream: log entries no worker can persist, in the log's slot so one script
    /// moves an entry between them.
    pub dead_letters: String,
    /// Prefix of status record keys in this campaign's slot (`…{tag}:r:`).
    pub status_prefix: String,
    /// Prefix of this campaign's idempotency keys (`…:i:`).
    pub idempotency_prefix: String,
    /// Waiting room: serving counter, token bucket, positions handed out.
    pub waiting_room: String,
    /// Waiting room: each user's position handed out after the opening.
    pub waiting_places: String,
    /// Waiting room: the pre-queue (users who joined before the opening).
    pub prequeue: String,
    /// Waiting room: admission steps, for each position's `admitted_at`.
    pub admission_steps: String,
    /// Waiting room: samples of the serving counter, for the measured outflow.
    pub outflow_samples: String,
}

impl Keys {
    /// Keys under `rushline:` or, with a namespace, `rushline:<namespace>:`.
    /// A namespace is 1–64 of `a-z 0-9 - _` (no braces, so it can never alter a hash tag).
    pub fn new(namespace: Option<&str>) -> Result<Self, QueueError> {
        let root = match namespace {
            None | Some("") => "rushline:".to_owned(),
            Some(ns) => {
                let ok = ns.len() <= 64
                    && ns.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    });
                if !ok {
                    return Err(QueueError::Config(format!(
                        "key namespace {ns:?} must be 1-64 of a-z 0-9 - _"
                    )));
                }
                format!("rushline:{ns}:")
            }
        };
        Ok(Self { root })
    }

    /// The prefix every key of this deployment starts with.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn tagged(&self, tag: SlotTag) -> String {
        format!("{}{{{tag}}}:", self.root)
    }

    /// All keys of `campaign`.
    pub fn campaign(&self, campaign: &CampaignId) -> CampaignKeys {
        let tagged = self.tagged(campaign.slot_tag());
        let meta = format!("{tagged}c:{campaign}");
        CampaignKeys {
            queue: format!("{meta}:q"),
            holders: format!("{meta}:h"),
            log: format!("{meta}:log"),
            dirty: format!("{meta}:dirty"),
            dead_letters: format!("{meta}:dead"),
            idempotency_prefix: format!("{meta}:i:"),
            waiting_room: format!("{meta}:wr"),
            waiting_places: format!("{meta}:wr:pos"),
            prequeue: format!("{meta}:wr:pre"),
            admission_steps: format!("{meta}:wr:steps"),
            outflow_samples: format!("{meta}:wr:flow"),
            status_prefix: format!("{tagged}r:"),
            meta,
        }
    }

    /// The status record of `request`.
    pub fn status(&self, request: &RequestId) -> String {
        format!("{}r:{request}", self.tagged(request.slot_tag()))
    }

    /// The per-(campaign, user) rate-limit key of `user`: in the campaign's slot, beside the
    /// idempotency claims the limit checks, so one script call covers a whole accept group.
    pub fn user_rate_limit(&self, campaign: &CampaignId, user: &UserId) -> String {
        format!(
            "{}c:{campaign}:rl:u:{user}",
            self.tagged(campaign.slot_tag())
        )
    }

    /// The per-client-address rate-limit key of `address` (a normalised address or prefix, as
    /// the API forms it): the address is the hash tag, so addresses spread over a cluster's slots.
    pub fn address_rate_limit(&self, address: &str) -> String {
        format!("{}rl:ip:{{{address}}}", self.root)
    }

    /// The set of campaign ids workers sweep.
    pub fn registry(&self) -> String {
        format!("{}campaigns", self.root)
    }

    /// The set of campaign ids with dead letters (an index for listing them; see
    /// [`crate::dead_letters`]).
    pub fn dead_letter_index(&self) -> String {
        format!("{}dead-letters", self.root)
    }

    /// Channel carrying campaign ids that have new work.
    pub fn work_channel(&self) -> String {
        format!("{}work", self.root)
    }

    /// Channel carrying ids of freshly decided requests.
    pub fn decided_channel(&self) -> String {
        format!("{}decided", self.root)
    }

    /// The ticket signing key API replicas share when none is configured (see
    /// [`crate::Queue::shared_ticket_key`]): one key, no campaign, so no hash tag.
    pub fn ticket_key(&self) -> String {
        format!("{}ticket-key", self.root)
    }
}

/// Field names of the campaign meta hash that Rust code reads (the Lua scripts name them in
/// their headers; see the table above). One place, so a rename cannot miss a reader.
pub mod meta_field {
    /// "1" when the state is built and accepts and decides.
    pub const READY: &str = "ready";
    /// Set by `warm_invalidate.lua`: the state is still here, the rebuild waits for the log.
    pub const REBUILD: &str = "rebuild";
    /// Display name.
    pub const NAME: &str = "name";
    /// Stock.
    pub const STOCK: &str = "stock";
    /// Coupons left.
    pub const REMAINING: &str = "remaining";
    /// Coupons issued.
    pub const ISSUED: &str = "issued";
    /// Next coupon sequence number.
    pub const SEQ: &str = "seq";
    /// Window start (ms).
    pub const OPENS: &str = "opens";
    /// Window end (ms, "" = never).
    pub const CLOSES: &str = "closes";
    /// Secret key of the coupon-code permutation.
    pub const CODE_KEY: &str = "key";
    /// Rebuild epoch the state was built at (copied from the record by `warm_finish.lua`).
    pub const EPOCH: &str = "epoch";
    /// Who decides the campaign's requests, `queued` or `instant` (copied from the record by
    /// `warm_finish.lua`; `accept.lua` decides at once when it reads `instant`). Absent in a
    /// state built before the mode existed: queued, the only mode there was.
    pub const DECIDE: &str = "decide";
    /// "1" when the campaign has a waiting room, absent otherwise (copied from the record by
    /// `warm_finish.lua`; accept.lua gates requests on it).
    pub const WAITING_ROOM: &str = "waiting_room";
    /// Waiting room: admit_per_second now (the record's; `waiting_room.lua` on an admin change).
    pub const WR_RATE: &str = "wr_rate";
    /// Waiting room: pass, seconds.
    pub const WR_PASS: &str = "wr_pass";
    /// Waiting room: pre-queue, seconds before opens.
    pub const WR_PREQUEUE: &str = "wr_prequeue";
    /// Waiting room: the pre-queue seed, hex.
    pub const WR_SEED: &str = "wr_seed";
    /// Waiting room: "1" while admission is paused.
    pub const WR_PAUSED: &str = "wr_paused";
    /// Leading zero bits of proof of work a join must show ("0": none).
    pub const WR_POW: &str = "wr_pow";
    /// Stock shards the campaign was created with (copied from the record by `warm_finish.lua`;
    /// shown by the view only, until the sharded engine reads it). Absent in a state warmed
    /// before shards existed: 1.
    pub const SHARDS: &str = "shards";
}

/// Field names of a decision log entry (written by `decide.lua` and `accept.lua`, moved whole by
/// the dead-letter and requeue scripts; read by [`crate::decision_log`]).
pub mod log_field {
    /// The batch's decision lines, newline-separated (format in `decide.lua`'s header).
    pub const DECISIONS: &str = "d";
    /// The rebuild epoch of the state that made the decisions.
    pub const EPOCH: &str = "e";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_rushline_and_shares_the_campaign_tag() {
        let keys = Keys::new(Some("t1")).unwrap();
        let campaign = CampaignId::parse("concert-2026").unwrap();
        let request = RequestId::new_for(&campaign);
        let c = keys.campaign(&campaign);
        let tag = format!("{{{}}}", campaign.slot_tag());
        for key in [
            &c.meta,
            &c.queue,
            &c.holders,
            &c.log,
            &c.dirty,
            &c.dead_letters,
            &c.idempotency_prefix,
            &c.status_prefix,
            &c.waiting_room,
            &c.waiting_places,
            &c.prequeue,
            &c.admission_steps,
            &c.outflow_samples,
        ] {
            assert!(key.starts_with("rushline:t1:"), "{key}");
            assert_eq!(
                key.find('{'),
                key.find(&tag),
                "{key}: first brace must open the tag"
            );
        }
        assert!(keys.status(&request).starts_with(&c.status_prefix));
        let user = UserId::parse("u-{1}").unwrap();
        let limit = keys.user_rate_limit(&campaign, &user);
        assert!(limit.starts_with(&c.meta), "{limit}");
        assert_eq!(limit.find('{'), limit.find(&tag), "{limit}");
        assert_eq!(
            keys.address_rate_limit("2001:db8::/64"),
            "rushline:t1:rl:ip:{2001:db8::/64}"
        );
        assert!(keys.registry().starts_with("rushline:"));
    }

    #[test]
    fn namespaces_cannot_smuggle_braces() {
        assert!(Keys::new(Some("a{b}")).is_err());
        assert_eq!(Keys::new(None).unwrap().root(), "rushline:");
    }
}
