//! Jittered exponential backoff for retrying a failing backing service.

use std::time::Duration;

use rand::Rng;

/// 50 ms doubling to 2 s, each delay jittered to 50–100 % so workers that failed together do not
/// retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(50),
        }
    }
}

impl Backoff {
    /// The delay before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(2));
        base.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Back to the shortest delay after a success.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first <= Duration::from_millis(50) && first >= Duration::from_millis(25));
        for _ in 0..20 {
            assert!(backoff.next_delay() <= Duration::from_secs(2));
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(50));
    }
}
