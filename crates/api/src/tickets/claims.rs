//! What a ticket says: the JWT claim set (see the module doc of [`super`] for its meaning).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rushline_domain::{CampaignId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The `iss` of every ticket.
pub const ISSUER: &str = "rushline";

/// How long a ticket that is not admitted yet stays valid (`exp` = `iat` + this): a waiting or
/// pre-queued user's poll gets a fresh ticket long before it runs out, and a leaked old one
/// does not stay usable for ever.
pub const WAITING_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A ticket's claims. Built by [`TicketClaims::waiting`] and [`TicketClaims::admitted`], which
/// keep `exp` consistent with `adm`; read back by [`super::Tickets::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    /// Always [`ISSUER`]; verification refuses anything else.
    pub iss: String,
    /// The user the ticket was issued to.
    pub sub: UserId,
    /// The campaign whose queue it is for.
    pub cid: CampaignId,
    /// Unique per issued ticket.
    pub jti: Uuid,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Place in the queue; absent while pre-queued (before the campaign opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<u64>,
    /// Admitted at, unix milliseconds; absent until admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<i64>,
    /// Expires at, unix seconds: `iat` + 24 h while not admitted, the pass's end once admitted.
    pub exp: i64,
}

impl TicketClaims {
    /// A ticket for `user` in `campaign`'s queue at `position` (`None` while pre-queued), issued
    /// at `now`, not admitted.
    pub fn waiting(
        user: UserId,
        campaign: CampaignId,
        position: Option<u64>,
        now: DateTime<Utc>,
    ) -> Self {
        let iat = now.timestamp();
        Self {
            iss: ISSUER.to_owned(),
            sub: user,
            cid: campaign,
            jti: Uuid::new_v4(),
            iat,
            pos: position,
            adm: None,
            exp: iat.saturating_add(secs(WAITING_LIFETIME)),
        }
    }

    /// A ticket admitted at `admitted_at` with a pass of `pass` (the campaign's `pass_secs`):
    /// `adm` set and `exp` = `adm` (whole seconds, rounded down) + `pass`. Rounding down ends the
    /// pass up to a second early, never late, and `exp` alone says when it ends, so rushline and
    /// an external verifier agree to the second.
    pub fn admitted(
        user: UserId,
        campaign: CampaignId,
        position: u64,
        admitted_at: DateTime<Utc>,
        pass: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        let adm = admitted_at.timestamp_millis();
        Self {
            pos: Some(position),
            adm: Some(adm),
            exp: adm.div_euclid(1000).saturating_add(secs(pass)),
            ..Self::waiting(user, campaign, Some(position), now)
        }
    }

    /// Whether this is a pass at `now`: admitted, and `now` is before `exp`. What a request for a
    /// coupon needs (CONTRACT.md guarantee 7), and what an external verifier checks.
    pub fn is_pass_at(&self, now: DateTime<Utc>) -> bool {
        self.adm.is_some() && now.timestamp() < self.exp
    }

    /// Admitted, and `now` is at or past `exp`: the `ticket-expired` case.
    pub fn is_expired_pass_at(&self, now: DateTime<Utc>) -> bool {
        self.adm.is_some() && now.timestamp() >= self.exp
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn ids() -> (UserId, CampaignId) {
        (
            UserId::parse("u-1").unwrap(),
            CampaignId::parse("drop").unwrap(),
        )
    }

    #[test]
    fn a_waiting_ticket_is_no_pass_and_lives_a_day() {
        let (user, campaign) = ids();
        let t = TicketClaims::waiting(user, campaign, None, at(1_000_000_500));
        assert_eq!(t.iat, 1_000_000);
        assert_eq!(t.exp, 1_000_000 + 86_400);
        assert!(!t.is_pass_at(at(1_000_001_000)));
        assert!(!t.is_expired_pass_at(at(2_000_000_000)));
        let json = serde_json::to_value(&t).unwrap();
        assert!(
            json.get("pos").is_none() && json.get("adm").is_none(),
            "{json}"
        );
        assert_eq!(json["iss"], "rushline");
    }

    #[test]
    fn a_pass_ends_pass_secs_after_admission_rounded_down() {
        let (user, campaign) = ids();
        let t = TicketClaims::admitted(
            user,
            campaign,
            7,
            at(10_999),
            Duration::from_secs(600),
            at(11_000),
        );
        assert_eq!((t.pos, t.adm, t.exp), (Some(7), Some(10_999), 610));
        assert!(t.is_pass_at(at(609_999)));
        assert!(!t.is_pass_at(at(610_000)));
        assert!(t.is_expired_pass_at(at(610_000)));
        let back: TicketClaims = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn every_ticket_gets_its_own_jti() {
        let (user, campaign) = ids();
        let a = TicketClaims::waiting(user.clone(), campaign.clone(), Some(1), at(0));
        let b = TicketClaims::waiting(user, campaign, Some(1), at(0));
        assert_ne!(a.jti, b.jti);
    }
}
