//! The waiting room as the API serves it (CONTRACT.md, *Waiting room*; guarantee 7): a user's
//! standing from their ticket, and the admission check a request must pass.
//!
//! # Where the truth lives
//!
//! Positions, the serving counter and admission times live in Redis (`rushline_queue`'s
//! waiting-room scripts), the same for every replica. The ticket a user holds is a signed copy of
//! their place ([`crate::tickets`]): position, and once admitted, when. So most answers need no
//! Redis call at all:
//!
//! - a waiting ticket is compared with the replica's copy of the counter ([`counters`]);
//! - an admitted ticket carries its admission time, and so its expiry.
//!
//! Redis is asked only when the ticket cannot tell: a pre-queued ticket after the opening (its
//! position is drawn then), and a waiting ticket the counter has reached (to learn *when*). Each
//! such answer carries a new ticket that can tell, so a user causes at most two such calls.
//!
//! # The admission check (guarantee 7)
//!
//! A request on a waiting-room campaign passes [`admission`]: the ticket's
//! signature, campaign and user, then its place — admitted, and less than `pass_secs` ago. The
//! accept script refuses any request of such a campaign that did not pass (`accept.lua`'s `T`),
//! so the check cannot be skipped by any path through the API.

pub mod counters;
pub mod proof;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use rushline_domain::{CampaignId, QueueStanding, QueueState, UserId};
use rushline_queue::{Placement, Queue, QueueCounter, QueueError, QueuePlace, WaitingRoomRead};

use crate::tickets::{TicketClaims, TicketError, Tickets};
pub use counters::{CounterNow, Counters};

/// Longest `poll_after_secs` (and `Retry-After` of a `not-your-turn`).
const MAX_POLL_SECS: f64 = 30.0;
/// Shortest `poll_after_secs`.
const MIN_POLL_SECS: f64 = 1.0;

/// Why a request's ticket does not let it in.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// 401: no ticket, or one that does not verify or is for another campaign.
    #[error("{0}")]
    Invalid(String),
    /// 403 `not-your-turn`: the serving counter has not reached the ticket's position.
    #[error("not your turn yet: the serving counter has not reached your position")]
    NotYourTurn(Box<QueueStanding>),
    /// 403 `ticket-expired`: admitted more than `pass_secs` ago.
    #[error("the ticket's pass has expired; join the queue again")]
    Expired,
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No ticket key yet (the shared development key has not been read from Redis), or a ticket
    /// could not be signed: not the client's fault (503).
    #[error(transparent)]
    Tickets(TicketError),
}

/// The waiting room's state in this process: tickets and the counter copies.
pub struct WaitingRoom {
    queue: Queue,
    tickets: Tickets,
    counters: Counters,
}

impl WaitingRoom {
    /// Serves waiting rooms with `tickets` over `queue`.
    pub fn new(queue: Queue, tickets: Tickets) -> Self {
        Self {
            counters: Counters::new(queue.clone()),
            queue,
            tickets,
        }
    }

    /// The counter copies (for the metrics scrape).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The ticket signer and verifier.
    pub fn tickets(&self) -> &Tickets {
        &self.tickets
    }

    /// Verifies a `Rushline-Ticket` for `campaign`: 401 material unless it is well-formed, signed
    /// by one of our keys, and for this campaign.
    pub fn verify(&self, campaign: &CampaignId, raw: &str) -> Result<Arc<TicketClaims>, Refusal> {
        self.tickets.verify_for(raw, campaign).map_err(|e| match e {
            TicketError::KeysUnavailable => Refusal::Tickets(e),
            e => Refusal::Invalid(format!("the Rushline-Ticket does not verify: {e}")),
        })
    }

    /// The standing a join answers with: `place` as Redis just reported it, with a new ticket.
    pub fn joined(
        &self,
        campaign: &CampaignId,
        user: &UserId,
        place: &QueuePlace,
    ) -> Result<QueueStanding, TicketError> {
        let now = self.counters.observe(campaign, place.counter);
        let claims = claims_for(campaign, user, place, now.now);
        let ticket = self.tickets.sign(&claims)?;
        Ok(standing(ticket, campaign, user, &claims, &now))
    }

    /// The standing of a verified ticket, with fresh figures: from the ticket and the counter
    /// copy when they tell, else from Redis (with a new ticket). `Ok(None)`: Redis holds no
    /// waiting room for the campaign (not warm: warm it and ask again). A ticket whose place
    /// Redis no longer holds (its state was lost and rebuilt) is refused: join again.
    pub async fn standing_of(
        &self,
        campaign: &CampaignId,
        raw_ticket: &str,
        claims: &TicketClaims,
    ) -> Result<Option<QueueStanding>, Refusal> {
        let now = match self.counters.get(campaign).await? {
            WaitingRoomRead::Ready(now) => now,
            WaitingRoomRead::NotWarm => return Ok(None),
            WaitingRoomRead::NoWaitingRoom => return Err(no_place()),
        };
        let user = &claims.sub;
        if !needs_redis(claims, &now) {
            return Ok(Some(standing(
                raw_ticket.to_owned(),
                campaign,
                user,
                claims,
                &now,
            )));
        }
        let place = match self.queue.queue_place(campaign, user).await? {
            WaitingRoomRead::Ready(Some(place)) => place,
            WaitingRoomRead::NotWarm => return Ok(None),
            WaitingRoomRead::Ready(None) | WaitingRoomRead::NoWaitingRoom => {
                return Err(no_place());
            }
        };
        let standing = self
            .joined(campaign, user, &place)
            .map_err(Refusal::Tickets)?;
        Ok(Some(standing))
    }
}

/// Whether the ticket and the counter copy cannot tell the ticket's state on their own.
fn needs_redis(claims: &TicketClaims, now: &CounterNow) -> bool {
    match (claims.pos, claims.adm) {
        // Admitted tickets carry their expiry.
        (_, Some(_)) => false,
        // Pre-queued: the position is drawn at the opening.
        (None, None) => now.now >= now.counter.opens_at,
        // Waiting: Redis knows when the counter reached it.
        (Some(position), None) => position <= now.counter.admitted_through,
    }
}

/// The claims of a ticket for `place`, issued at `now` (Redis's clock).
fn claims_for(
    campaign: &CampaignId,
    user: &UserId,
    place: &QueuePlace,
    now: DateTime<Utc>,
) -> TicketClaims {
    match (place.placement, place.admitted_at) {
        (Placement::Positioned(position), Some(admitted_at)) => TicketClaims::admitted(
            user.clone(),
            campaign.clone(),
            position,
            admitted_at,
            Duration::from_secs(u64::from(place.counter.pass_secs)),
            now,
        ),
        (Placement::Positioned(position), None) => {
            TicketClaims::waiting(user.clone(), campaign.clone(), Some(position), now)
        }
        (Placement::Prequeued, _) => {
            TicketClaims::waiting(user.clone(), campaign.clone(), None, now)
        }
    }
}

fn no_place() -> Refusal {
    Refusal::Invalid("the waiting room holds no place for this ticket; join again".into())
}

/// The admission check of a request on a waiting-room campaign, once its ticket verified and
/// proved to be the request's user's: `Ok(())` when `standing` (the ticket's fresh standing, from
/// [`WaitingRoom::standing_of`]) is admitted, its pass unexpired.
pub fn admission(standing: QueueStanding) -> Result<(), Refusal> {
    match standing.state {
        QueueState::Admitted => Ok(()),
        QueueState::Expired => Err(Refusal::Expired),
        QueueState::Prequeued | QueueState::Waiting => {
            Err(Refusal::NotYourTurn(Box::new(standing)))
        }
    }
}

/// A ticket's standing as of `now`.
fn standing(
    ticket: String,
    campaign: &CampaignId,
    user: &UserId,
    claims: &TicketClaims,
    now: &CounterNow,
) -> QueueStanding {
    let counter = &now.counter;
    let admitted_at = claims.adm.and_then(rushline_domain::timefmt::from_millis);
    // `exp` alone says when a pass ends (see `TicketClaims::admitted`), for rushline and for
    // every other verifier alike.
    let pass_expires_at = admitted_at.and_then(|_| DateTime::from_timestamp(claims.exp, 0));
    let state = match (claims.pos, pass_expires_at) {
        (_, Some(expires)) if now.now >= expires => QueueState::Expired,
        (_, Some(_)) => QueueState::Admitted,
        (None, None) => QueueState::Prequeued,
        // Reached by the copy but its admission time not yet read: waiting until Redis says
        // when (the caller asks it before refusing anything).
        (Some(_), None) => QueueState::Waiting,
    };
    let ahead = claims.pos.map(|position| {
        position
            .saturating_sub(counter.admitted_through)
            .saturating_sub(1)
    });
    let eta_secs = match (state, claims.pos) {
        (QueueState::Waiting, Some(position)) => {
            eta(position.saturating_sub(counter.admitted_through), counter)
        }
        (QueueState::Admitted | QueueState::Expired, _) => Some(0.0),
        _ => None,
    };
    QueueStanding {
        ticket,
        campaign_id: campaign.clone(),
        user_id: user.clone(),
        state,
        position: claims.pos,
        admitted_through: counter.admitted_through,
        ahead,
        eta_secs,
        poll_after_secs: poll_after(state, eta_secs, counter.opens_at, now.now),
        admitted_at,
        pass_expires_at,
        opens_at: counter.opens_at,
        server_time: now.now,
    }
}

/// Seconds until `to_go` more positions are admitted, at the measured outflow when there is one
/// (it reflects pauses, rate changes and the counter's real pace), else at the configured rate.
/// `None` while admission is paused and nothing moves.
fn eta(to_go: u64, counter: &QueueCounter) -> Option<f64> {
    let rate = if counter.outflow_per_sec > 0.0 {
        counter.outflow_per_sec
    } else if counter.paused {
        return None;
    } else {
        f64::from(counter.admit_per_second)
    };
    Some(round_ms(to_go as f64 / rate))
}

/// When to poll again: a quarter of the ETA while waiting (so the figures stay fresh as the end
/// nears), the opening while pre-queued, each spread by ±25 % at random so that a crowd told the
/// same figure does not come back in the same millisecond.
fn poll_after(
    state: QueueState,
    eta_secs: Option<f64>,
    opens_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> f64 {
    let base = match state {
        QueueState::Prequeued => {
            let until_open = (opens_at - now).num_milliseconds() as f64 / 1000.0;
            // Come back just after the opening, when positions are drawn.
            if until_open > MAX_POLL_SECS {
                MAX_POLL_SECS
            } else {
                until_open.max(0.0) + 1.0
            }
        }
        QueueState::Waiting => eta_secs.map_or(5.0, |eta| eta / 4.0),
        QueueState::Admitted => 5.0,
        QueueState::Expired => MAX_POLL_SECS,
    };
    let spread = rand::rng().random_range(0.75..1.25);
    round_ms((base * spread).clamp(MIN_POLL_SECS, MAX_POLL_SECS))
}

/// `Retry-After` for a `not-your-turn`: its poll interval, rounded up to whole seconds.
pub fn retry_after(standing: &QueueStanding) -> Duration {
    Duration::from_secs(standing.poll_after_secs.ceil().max(1.0) as u64)
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}
