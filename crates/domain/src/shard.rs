//! Stock shards (CONTRACT.md campaign option `shards`, guarantee 5): how many a campaign has, which
//! one a user belongs to, and the index of one.
//!
//! A campaign with `shards` = N is meant to be decided on N Redis slots at once, each user always
//! on the same one ([`shard_of`]), so "one coupon per user" needs no cross-shard check. Today the
//! engine decides every campaign on one slot whatever N is (see the README's *Stock shards*); the
//! count is validated, stored and echoed, and the stock-lease ledger (`rushline_store::leases`)
//! is its first foundation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::number::WholeNumber;
use crate::{UserId, ValidationError};

/// How many stock shards a campaign has: 1 ..= 64, default 1 (the stock in one piece).
///
/// From JSON it takes any whole number, `3.0` as well as `3` (see [`crate::number`]); fractions,
/// negatives, strings and out-of-range numbers are refused, naming the field `shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "WholeNumber", into = "u64")]
pub struct ShardCount(u8);

impl ShardCount {
    /// Most shards a campaign may have (bounds per-shard metric labels and keys).
    pub const MAX: u64 = 64;
    /// One shard: the whole stock on the campaign's own slot, as before shards existed.
    pub const ONE: Self = Self(1);

    /// Accepts 1 ..= 64.
    pub fn new(value: u64) -> Result<Self, ValidationError> {
        if (1..=Self::MAX).contains(&value) {
            // Fits: MAX < u8::MAX.
            Ok(Self(value as u8))
        } else {
            Err(ValidationError::new(
                "shards",
                "must be an integer from 1 to 64",
            ))
        }
    }

    /// The count as a number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// Shard `index` of a campaign with this many shards: `0 ..= count - 1`.
    pub fn shard(self, index: u64) -> Result<ShardIndex, ValidationError> {
        if index < u64::from(self.0) {
            // Fits: below the count, itself at most 64.
            Ok(ShardIndex(index as u8))
        } else {
            Err(ValidationError::new(
                "shard",
                "must be below the campaign's shard count",
            ))
        }
    }

    /// Every shard of a campaign with this many, in index order.
    pub fn shards(self) -> impl Iterator<Item = ShardIndex> {
        (0..self.0).map(ShardIndex)
    }
}

impl Default for ShardCount {
    fn default() -> Self {
        Self::ONE
    }
}

impl TryFrom<u64> for ShardCount {
    type Error = ValidationError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<WholeNumber> for ShardCount {
    type Error = ValidationError;
    fn try_from(value: WholeNumber) -> Result<Self, Self::Error> {
        Self::new(value.0)
    }
}

impl From<ShardCount> for u64 {
    fn from(count: ShardCount) -> u64 {
        u64::from(count.0)
    }
}

impl std::fmt::Display for ShardCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One shard of a campaign: `0 ..= shards - 1`. Shard 0 lives on the campaign's own slot, so a
/// one-shard campaign is today's layout. Built only through [`ShardCount::shard`],
/// [`ShardCount::shards`] or [`shard_of`], so an index is always below some campaign's count
/// (at most 63); whether it is below *this* campaign's count is checked where the campaign is
/// read (the ledger refuses a shard past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardIndex(u8);

impl ShardIndex {
    /// The index as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl std::fmt::Display for ShardIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The shard `user` belongs to in a campaign with `shards` shards: the first 8 bytes of
/// SHA-256 of the user id's UTF-8 (as stored: NFC), read big-endian, modulo the count.
///
/// Stable across processes, machines, releases and restarts (unlike std's randomly keyed
/// hasher): every API replica and worker, and a rebuild from PostgreSQL, must put a user on the
/// same shard, or one user could hold a coupon on two shards. Changing this function moves users
/// between shards of live campaigns: it must never change. SHA-256 spreads any set of ids evenly,
/// whatever their shape (sequential `u-1`, `u-2` … included), and 2^64 mod 64 = 0, so the modulo
/// adds no bias for counts that divide 64 and at most 2^-58 otherwise.
pub fn shard_of(user: &UserId, shards: ShardCount) -> ShardIndex {
    let digest = Sha256::digest(user.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let position = u64::from_be_bytes(first) % u64::from(shards.0);
    // Fits: below the count, itself at most 64.
    ShardIndex(position as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn count(n: u64) -> ShardCount {
        ShardCount::new(n).unwrap()
    }

    #[test]
    fn shard_count_limits() {
        assert!(ShardCount::new(0).is_err());
        assert_eq!(ShardCount::new(1).unwrap().get(), 1);
        assert_eq!(ShardCount::new(64).unwrap().get(), 64);
        assert!(ShardCount::new(65).is_err());
        assert_eq!(ShardCount::new(0).unwrap_err().field, "shards");
        assert_eq!(ShardCount::default(), ShardCount::ONE);
        let parse = |json: &str| serde_json::from_str::<ShardCount>(json);
        assert_eq!(parse("3").unwrap().get(), 3);
        assert_eq!(parse("3.0").unwrap().get(), 3);
        for bad in ["0", "65", "-1", "1.5", "\"3\"", "null", "true", "1e30"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&count(7)).unwrap(), "7");
    }

    #[test]
    fn shard_indexes_stay_below_the_count() {
        let three = count(3);
        assert_eq!(three.shard(2).unwrap().get(), 2);
        assert_eq!(three.shard(3).unwrap_err().field, "shard");
        assert_eq!(
            three.shards().map(ShardIndex::get).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    /// Fixed expectations: the function must give these on every machine and in every release
    /// (a change would move users of live campaigns to other shards).
    #[test]
    fn shard_of_is_stable() {
        // Computed independently (Python's hashlib: int.from_bytes(sha256(id)[:8], "big") % n)
        // and pinned.
        let pinned = [
            ("u-1", 64, 9),
            ("u-2", 64, 21),
            ("alice", 64, 47),
            ("콘서트", 64, 48),
            ("u-1", 3, 0),
            ("alice", 7, 1),
            ("u-2", 5, 3),
        ];
        for (id, n, expected) in pinned {
            assert_eq!(shard_of(&user(id), count(n)).get(), expected, "{id} of {n}");
        }
        assert_eq!(shard_of(&user("anyone"), ShardCount::ONE).get(), 0);
    }

    /// 64,000 sequential ids over 8 and 3 shards: every shard within 5% of its fair share
    /// (a chi-square-sized bound: the expected deviation is about 1%).
    #[test]
    fn shard_of_is_roughly_uniform() {
        for n in [3u64, 8] {
            let total = 64_000u64;
            let mut per_shard = vec![0u64; n as usize];
            for i in 0..total {
                per_shard[shard_of(&user(&format!("u-{i}")), count(n)).get() as usize] += 1;
            }
            let fair = total / n;
            for (shard, &got) in per_shard.iter().enumerate() {
                assert!(
                    got.abs_diff(fair) * 20 < fair,
                    "shard {shard} of {n}: {got} users, fair share {fair}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn any_user_lands_on_a_shard_below_the_count(id in "[a-z0-9-]{1,40}", n in 1u64..=64) {
            let shards = count(n);
            let shard = shard_of(&user(&id), shards);
            prop_assert!(u64::from(shard.get()) < n);
            prop_assert_eq!(shard, shard_of(&user(&id), shards));
        }
    }
}
