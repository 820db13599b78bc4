//! A campaign's waiting room in Redis: joining the queue, a user's place, the serving counter and
//! an operator's admission changes — each one call of `lua/waiting_room.lua`, whose header holds
//! the design (keys, the token-bucket counter and its bound, the pre-queue shuffle and its audit,
//! admission times).
//!
//! Every call advances the serving counter to Redis `TIME` before answering, so every API replica
//! reads the same counter. A campaign Redis does not hold answers [`WaitingRoomRead::NotWarm`]
//! (or [`JoinOutcome::Unknown`]): the caller warms it and retries, as for accept.
//!
//! What a Redis data loss does: the queue lives only in Redis. A rebuild from PostgreSQL restores
//! the waiting room's settings, not its positions; users join again and get new positions (the
//! pre-queue, if the opening has not passed yet, is rebuilt by their joins with the same order).

use chrono::{DateTime, Utc};
use redis::Value;
use rushline_domain::{CampaignId, UserId, timefmt};

use crate::record::{array, int, text};
use crate::{Queue, QueueError, scripts};

/// One campaign's serving counter, as of `now` (Redis time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueCounter {
    /// Redis's clock when it was read.
    pub now: DateTime<Utc>,
    /// When admission starts: the campaign's `opens_at`.
    pub opens_at: DateTime<Utc>,
    /// Positions handed out (0 before the opening).
    pub joined: u64,
    /// Users waiting for the opening shuffle (0 after the opening).
    pub prequeued: u64,
    /// Every position up to this one is admitted.
    pub admitted_through: u64,
    /// Positions admitted per second now (an operator may change it).
    pub admit_per_second: u32,
    /// Whether an operator paused admission.
    pub paused: bool,
    /// Measured advance of `admitted_through` per second over the last ~10 s (0 before the
    /// opening), for ETAs.
    pub outflow_per_sec: f64,
    /// Seconds an admitted ticket stays valid.
    pub pass_secs: u32,
}

impl QueueCounter {
    /// People still waiting: positions handed out but not admitted, plus the pre-queue.
    pub fn waiting(&self) -> u64 {
        self.joined.saturating_sub(self.admitted_through) + self.prequeued
    }
}

/// Where a user stands in the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Joined before the opening: their position is drawn at the opening.
    Prequeued,
    /// Their position, 1-based.
    Positioned(u64),
}

/// One user's place in the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueuePlace {
    /// Pre-queued or positioned.
    pub placement: Placement,
    /// When `admitted_through` first reached the position (early by at most the step merge,
    /// see `waiting_room.lua`); `None` while waiting.
    pub admitted_at: Option<DateTime<Utc>>,
    /// Admitted more than `pass_secs` ago: joining again gives a new position at the back.
    pub expired: bool,
    /// The counter as of this read.
    pub counter: QueueCounter,
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JoinOutcome {
    /// In the line: `first` when this join made the place (a first join, or a new position
    /// after an expired pass); `false` when the user already held it.
    Joined {
        /// Whether this join made the place.
        first: bool,
        /// The place.
        place: QueuePlace,
    },
    /// The campaign has no waiting room.
    NoWaitingRoom,
    /// Too early: before `opens_at - prequeue_secs`.
    NotOpenYet,
    /// The campaign has closed or sold out.
    Closed,
    /// The campaign is not warm in Redis: warm it and retry.
    Unknown,
}

/// A waiting-room read of a campaign Redis may not hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaitingRoomRead<T> {
    /// The answer.
    Ready(T),
    /// The campaign has no waiting room.
    NoWaitingRoom,
    /// The campaign is not warm in Redis: warm it and retry.
    NotWarm,
}

impl<T> WaitingRoomRead<T> {
    /// The answer; `None` for both other cases.
    pub fn ready(self) -> Option<T> {
        match self {
            Self::Ready(value) => Some(value),
            Self::NoWaitingRoom | Self::NotWarm => None,
        }
    }
}

/// The operation `waiting_room.lua` runs.
#[derive(Clone, Copy)]
enum Op<'a> {
    Join(&'a UserId),
    Place(&'a UserId),
    Counter,
    Admission {
        admit_per_second: Option<u32>,
        paused: Option<bool>,
    },
}

/// A decoded `OK` reply.
struct Reply {
    counter: QueueCounter,
    place: Option<(Placement, Option<DateTime<Utc>>, bool)>,
    first: bool,
}

/// The script's reply, decoded.
enum Answer {
    Ok(Reply),
    NotWarm,
    NoWaitingRoom,
    NotOpenYet,
    Closed,
}

impl Queue {
    /// Joins `user` to `campaign`'s line (see [`JoinOutcome`]); joining again returns the same
    /// place unless its pass expired.
    pub async fn join_queue(
        &self,
        campaign: &CampaignId,
        user: &UserId,
    ) -> Result<JoinOutcome, QueueError> {
        Ok(match self.waiting_room(campaign, Op::Join(user)).await? {
            Answer::Ok(reply) => {
                let place = place_of(&reply)
                    .ok_or_else(|| QueueError::protocol("join reply without a place"))?;
                JoinOutcome::Joined {
                    first: reply.first,
                    place,
                }
            }
            Answer::NotWarm => JoinOutcome::Unknown,
            Answer::NoWaitingRoom => JoinOutcome::NoWaitingRoom,
            Answer::NotOpenYet => JoinOutcome::NotOpenYet,
            Answer::Closed => JoinOutcome::Closed,
        })
    }

    /// Advances `campaign`'s serving counter to now and returns it.
    pub async fn waiting_room_counter(
        &self,
        campaign: &CampaignId,
    ) -> Result<WaitingRoomRead<QueueCounter>, QueueError> {
        self.read(campaign, Op::Counter, |reply| Ok(reply.counter))
            .await
    }

    /// `user`'s current place (a pre-queued user's position is resolved after the opening);
    /// `Ready(None)`: never joined.
    pub async fn queue_place(
        &self,
        campaign: &CampaignId,
        user: &UserId,
    ) -> Result<WaitingRoomRead<Option<QueuePlace>>, QueueError> {
        self.read(campaign, Op::Place(user), |reply| Ok(place_of(&reply)))
            .await
    }

    /// An operator's change: a new `admit_per_second` and/or pause (`Some(true)`) or resume
    /// (`Some(false)`); `None` leaves each as it is. Call after PostgreSQL recorded it: a warm-up
    /// copies the record's settings, so a crash between the two is repaired by the next change
    /// or rebuild. The counter is advanced at the old settings first.
    pub async fn set_admission(
        &self,
        campaign: &CampaignId,
        admit_per_second: Option<u32>,
        paused: Option<bool>,
    ) -> Result<WaitingRoomRead<QueueCounter>, QueueError> {
        let op = Op::Admission {
            admit_per_second,
            paused,
        };
        self.read(campaign, op, |reply| Ok(reply.counter)).await
    }

    async fn read<T>(
        &self,
        campaign: &CampaignId,
        op: Op<'_>,
        answer: impl FnOnce(Reply) -> Result<T, QueueError>,
    ) -> Result<WaitingRoomRead<T>, QueueError> {
        match self.waiting_room(campaign, op).await? {
            Answer::Ok(reply) => Ok(WaitingRoomRead::Ready(answer(reply)?)),
            Answer::NotWarm => Ok(WaitingRoomRead::NotWarm),
            Answer::NoWaitingRoom => Ok(WaitingRoomRead::NoWaitingRoom),
            Answer::NotOpenYet | Answer::Closed => {
                Err(QueueError::protocol("join refusal to a read"))
            }
        }
    }

    async fn waiting_room(&self, campaign: &CampaignId, op: Op<'_>) -> Result<Answer, QueueError> {
        let keys = self.keys.campaign(campaign);
        let mut invocation = scripts::WAITING_ROOM.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.waiting_room)
            .key(&keys.waiting_places)
            .key(&keys.prequeue)
            .key(&keys.admission_steps)
            .key(&keys.outflow_samples);
        match op {
            Op::Join(user) => invocation.arg("join").arg(user.as_str()).arg("").arg(""),
            Op::Place(user) => invocation.arg("place").arg(user.as_str()).arg("").arg(""),
            Op::Counter => invocation.arg("counter").arg("").arg("").arg(""),
            Op::Admission {
                admit_per_second,
                paused,
            } => invocation
                .arg("admission")
                .arg("")
                .arg(admit_per_second.map(|n| n.to_string()).unwrap_or_default())
                .arg(match paused {
                    None => "",
                    Some(true) => "1",
                    Some(false) => "0",
                }),
        };
        let reply: Value = self
            .run(|mut conn| async move { Ok(invocation.invoke_async(&mut conn).await?) })
            .await?;
        parse_reply(&reply)
    }
}

fn place_of(reply: &Reply) -> Option<QueuePlace> {
    reply
        .place
        .map(|(placement, admitted_at, expired)| QueuePlace {
            placement,
            admitted_at,
            expired,
            counter: reply.counter,
        })
}

fn parse_reply(reply: &Value) -> Result<Answer, QueueError> {
    let fields = array(reply)?;
    let code = fields
        .first()
        .ok_or_else(|| QueueError::protocol("empty waiting room reply"))?;
    match text(code)? {
        "OK" => {}
        "M" => return Ok(Answer::NotWarm),
        "N" => return Ok(Answer::NoWaitingRoom),
        "E" => return Ok(Answer::NotOpenYet),
        "C" => return Ok(Answer::Closed),
        other => {
            return Err(QueueError::protocol(format!(
                "waiting room reply {other:?}"
            )));
        }
    }
    let bad = || QueueError::protocol(format!("waiting room reply {reply:?}"));
    let number = |i: usize| -> Result<i64, QueueError> { int(fields.get(i).ok_or_else(bad)?) };
    let count =
        |i: usize| -> Result<u64, QueueError> { u64::try_from(number(i)?).map_err(|_| bad()) };
    let time = |ms: i64| timefmt::from_millis(ms).ok_or_else(bad);
    let now_ms = number(1)?;
    let (sample_ms, sample_through) = (number(8)?, count(9)?);
    let admitted_through = count(5)?;
    let outflow_per_sec = if now_ms > sample_ms {
        admitted_through.saturating_sub(sample_through) as f64 * 1000.0
            / (now_ms - sample_ms) as f64
    } else {
        0.0
    };
    let counter = QueueCounter {
        now: time(now_ms)?,
        opens_at: time(number(2)?)?,
        joined: count(3)?,
        prequeued: count(4)?,
        admitted_through,
        admit_per_second: u32::try_from(count(6)?).map_err(|_| bad())?,
        paused: number(7)? == 1,
        outflow_per_sec,
        pass_secs: u32::try_from(count(10)?).map_err(|_| bad())?,
    };
    let place = match fields.get(11).map(text).transpose()? {
        None | Some("") => None,
        Some(kind) => {
            let placement = match kind {
                "P" => Placement::Prequeued,
                "N" => Placement::Positioned(count(12)?),
                _ => return Err(bad()),
            };
            let admitted_at = match fields.get(13) {
                Some(Value::Int(ms)) => Some(time(*ms)?),
                _ => None,
            };
            Some((placement, admitted_at, number(14)? == 1))
        }
    };
    let first = fields.get(15).map(int).transpose()? == Some(1);
    Ok(Answer::Ok(Reply {
        counter,
        place,
        first,
    }))
}

/// Lowercase hex of `bytes` (the pre-queue seed as the script keys its hash with).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
