//! The limit on failed authentications per client address, so that tokens cannot be guessed
//! from one address: after [`AuthFailures::max`] failed bearer authentications within
//! [`AuthFailures::window`] from one address, every request from it that carries an
//! `Authorization` header gets 429 with `Retry-After` (before its token is checked) until the
//! window that began with its first failure has passed. Successful authentications are not
//! counted, and anonymous requests are never refused.
//!
//! Written here rather than with `governor` / `actix-governor`: those limit the rate of every
//! request (a token bucket consumed on each check), while this counts only failures, which are
//! known after the check, and must be asked "is this address blocked?" without consuming
//! anything; a fixed window per address in a map is a few lines. Memory is bounded: expired
//! windows are pruned, and at [`MAX_ADDRESSES`] the oldest window is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked at once (about 50 bytes each).
pub const MAX_ADDRESSES: usize = 100_000;

/// The failed authentications counted per client address, shared by every worker.
pub struct AuthFailures {
    /// Failures allowed in a window; the next request with a token is refused.
    pub max: u32,
    /// Length of the window, from an address's first failure.
    pub window: Duration,
    seen: Mutex<HashMap<IpAddr, Window>>,
}

/// One address's window: when its first failure was, and how many failed since.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl AuthFailures {
    /// A limit of `max` failures per `window` per address.
    pub fn new(max: u32, window: Duration) -> AuthFailures {
        AuthFailures { max, window, seen: Mutex::new(HashMap::new()) }
    }

    /// `Some(seconds to wait, at least 1)` when `addr` used up its failures in the current
    /// window, `None` when it may try.
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let w = seen.get(&addr)?;
        let elapsed = now.saturating_duration_since(w.start);
        if w.failures < self.max || elapsed >= self.window {
            return None;
        }
        let left = self.window - elapsed;
        Some((left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1))
    }

    /// Counts one failed authentication from `addr`; a window that has passed starts again.
    pub fn record_failure(&self, addr: IpAddr, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_ADDRESSES && !seen.contains_key(&addr) {
            let window = self.window;
            seen.retain(|_, w| now.saturating_duration_since(w.start) < window);
            if seen.len() >= MAX_ADDRESSES
                && let Some(oldest) = seen.iter().min_by_key(|(_, w)| w.start).map(|(a, _)| *a)
            {
                seen.remove(&oldest);
            }
        }
        let w = seen.entry(addr).or_insert(Window { start: now, failures: 0 });
        if now.saturating_duration_since(w.start) >= self.window {
            *w = Window { start: now, failures: 0 };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Addresses tracked now (for tests).
    pub fn tracked(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Default for AuthFailures {
    /// 10 failures per minute.
    fn default() -> Self {
        AuthFailures::new(10, Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_and_only_it_until_the_window_passes() {
        let limit = AuthFailures::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(limit.blocked(a, t0), None, "failure {i}");
            limit.record_failure(a, t0);
        }
        assert_eq!(limit.blocked(a, t0), Some(60));
        assert_eq!(limit.blocked(a, t0 + Duration::from_millis(30_500)), Some(30));
        assert_eq!(limit.blocked(a, t0 + Duration::from_millis(59_999)), Some(1));
        // Another address is not affected.
        assert_eq!(limit.blocked(b, t0), None);
        limit.record_failure(b, t0);
        assert_eq!(limit.blocked(b, t0), None);
        // The window passes: a may try again, and its count starts over.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(limit.blocked(a, t1), None);
        limit.record_failure(a, t1);
        assert_eq!(limit.blocked(a, t1), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let limit = AuthFailures::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            limit.record_failure(IpAddr::from(i.to_be_bytes()), t0 + Duration::from_nanos(u64::from(i)));
        }
        assert_eq!(limit.tracked(), MAX_ADDRESSES);
        // The newest address is still tracked (and blocked); the oldest was dropped.
        let newest = IpAddr::from((MAX_ADDRESSES as u32 + 9).to_be_bytes());
        assert!(limit.blocked(newest, t0 + Duration::from_secs(1)).is_some());
        assert_eq!(limit.blocked(IpAddr::from(0u32.to_be_bytes()), t0 + Duration::from_secs(1)), None);
        // Expired windows are pruned first.
        let late = t0 + Duration::from_secs(120);
        limit.record_failure("192.0.2.7".parse().unwrap(), late);
        assert_eq!(limit.tracked(), 1);
    }
}
