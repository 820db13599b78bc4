//! What a blast sends: one [`Job`] per user, shuffled, and how fast the jobs start ([`Load`]).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::LoadError;

/// One user's presses on one campaign.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index into the scenario's campaign list.
    pub campaign: u16,
    /// The user id sent.
    pub user: String,
    /// How many presses, each sent after the previous answer (≥ 1).
    pub presses: u8,
    /// Copies of the first press sent at once with one `Idempotency-Key` (1 = a plain press).
    pub racing: u8,
}

impl Job {
    /// Requests this job sends.
    pub fn requests(&self) -> usize {
        usize::from(self.racing.max(1)) + usize::from(self.presses.max(1)) - 1
    }
}

/// How a plan's requests are split into users.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mix {
    /// Requests in total.
    pub requests: usize,
    /// Distinct users (≤ requests); the rest are repeat presses and racing retries.
    pub users: usize,
    /// Share of the extra requests (requests − users) sent as racing retries; the rest are
    /// repeat presses after the first answer.
    pub racing_share: f64,
}

/// Builds a shuffled plan over `campaigns` campaigns: users are spread round-robin, so every
/// campaign gets the same mix. `tag` keeps user ids apart between runs.
pub fn plan(mix: Mix, campaigns: usize, tag: &str, seed: u64) -> Result<Vec<Job>, LoadError> {
    if mix.users == 0 || campaigns == 0 || campaigns > usize::from(u16::MAX) {
        return Err(LoadError::InvalidPlan(
            "need at least one user and 1..=65535 campaigns".into(),
        ));
    }
    if mix.requests < mix.users || mix.requests - mix.users > mix.users {
        return Err(LoadError::InvalidPlan(format!(
            "{} requests from {} users: need users <= requests <= 2 x users",
            mix.requests, mix.users
        )));
    }
    let extra = mix.requests - mix.users;
    let racing = (extra as f64 * mix.racing_share.clamp(0.0, 1.0)).round() as usize;
    let repeats = extra - racing;
    let mut jobs: Vec<Job> = (0..mix.users)
        .map(|i| Job {
            campaign: (i % campaigns) as u16,
            user: format!("u-{tag}-{i}"),
            presses: if i >= racing && i < racing + repeats {
                2
            } else {
                1
            },
            racing: if i < racing { 2 } else { 1 },
        })
        .collect();
    jobs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    Ok(jobs)
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// C tasks send as fast as answers come back.
    Closed {
        /// Tasks (and so connections).
        concurrency: usize,
    },
    /// Jobs start at a fixed rate; C tasks carry them.
    Open {
        /// Tasks (and so connections).
        concurrency: usize,
        /// Jobs started per second.
        rate: f64,
    },
}

impl Load {
    /// Tasks in the pool.
    pub fn concurrency(&self) -> usize {
        match *self {
            Load::Closed { concurrency } | Load::Open { concurrency, .. } => concurrency.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_has_the_requested_counts() {
        let mix = Mix {
            requests: 1_100,
            users: 1_000,
            racing_share: 0.2,
        };
        let jobs = plan(mix, 3, "t", 7).expect("plan");
        assert_eq!(jobs.len(), 1_000);
        assert_eq!(jobs.iter().map(Job::requests).sum::<usize>(), 1_100);
        assert_eq!(jobs.iter().filter(|j| j.racing == 2).count(), 20);
        assert_eq!(jobs.iter().filter(|j| j.presses == 2).count(), 80);
        let users: std::collections::HashSet<_> = jobs.iter().map(|j| &j.user).collect();
        assert_eq!(users.len(), 1_000);
    }

    #[test]
    fn impossible_mixes_are_refused() {
        let mix = |requests, users| Mix {
            requests,
            users,
            racing_share: 0.0,
        };
        assert!(plan(mix(10, 20), 1, "t", 1).is_err());
        assert!(plan(mix(50, 20), 1, "t", 1).is_err());
        assert!(plan(mix(10, 10), 0, "t", 1).is_err());
    }
}
