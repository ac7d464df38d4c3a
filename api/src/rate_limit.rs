//! Token buckets per caller: a bucket holds at most `burst` tokens and refills at
//! `per_second`; a request takes its cost or is refused. In memory, per process. At
//! [`MAX_CALLERS`] callers the buckets that have refilled (callers who stopped asking)
//! are forgotten first — they would start full anyway — so a flood of new callers cannot
//! reset the buckets of the ones being held back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bucket key of a client address: an IPv6 subscriber holds a whole /64, so the budget
/// is the network's; without an address (a router under test) every caller shares one.
pub fn address_key(ip: Option<std::net::IpAddr>) -> std::net::IpAddr {
    match ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])) {
        std::net::IpAddr::V6(v6) => {
            let mut bytes = v6.octets();
            bytes[8..].fill(0);
            std::net::IpAddr::from(bytes)
        }
        v4 => v4,
    }
}

/// Callers one set of buckets remembers.
pub const MAX_CALLERS: usize = 100_000;

/// Buckets keyed by caller.
pub struct Buckets<K> {
    per_second: f64,
    burst: f64,
    /// Tokens left, and when they were last counted.
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash> Buckets<K> {
    /// Buckets refilling at `per_second`, holding at most `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst,
            buckets: Mutex::default(),
        }
    }

    /// `per_minute` requests a minute, all of which may come at once.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::new(f64::from(per_minute) / 60.0, f64::from(per_minute.max(1)))
    }

    /// How fast a bucket refills.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Takes `cost` from `key`'s bucket; when it holds less, how long until it would.
    pub fn take(&self, key: K, cost: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(&key) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst
            });
            if buckets.len() >= MAX_CALLERS {
                // Every caller is being held back: the newest is refused rather than
                // anyone's bucket forgotten.
                return Err(Duration::from_secs(1));
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= cost {
            *tokens -= cost;
            Ok(())
        } else if self.per_second > 0.0 {
            Err(Duration::from_secs_f64(
                ((cost - *tokens) / self.per_second).min(86_400.0),
            ))
        } else {
            Err(Duration::from_secs(60))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_its_burst_then_refuses_with_the_wait() {
        let b = Buckets::per_minute(3);
        for _ in 0..3 {
            assert!(b.take("ip", 1.0).is_ok());
        }
        let wait = b.take("ip", 1.0).unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20));
        assert!(
            b.take("other", 1.0).is_ok(),
            "callers have buckets of their own"
        );
    }
}
