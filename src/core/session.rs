//! Sign-in sessions of the French pages: a mairie signs in once with its access code (a token
//! secret) and then holds only a session id in an `HttpOnly; Secure; SameSite=Strict` cookie.
//!
//! A session id is 256 random bits (drawn by the caller from the operating system), shown once
//! to the browser; only its SHA-256 digest is kept, like the tokens'. Each session carries the
//! signed-in token's [`Principal`] and its own CSRF token (256 bits, sent back in a hidden field
//! of every form). A session ends on sign-out, after [`IDLE_TIMEOUT_MINUTES`] without a request,
//! or [`MAX_AGE_HOURS`] after sign-in, whichever comes first. Pure: the clock and the random
//! bytes are passed in.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sha2::Digest;

use crate::core::auth::Principal;

/// Minutes without a request after which a session ends.
pub const IDLE_TIMEOUT_MINUTES: i64 = 30;

/// Hours after sign-in after which a session ends, active or not.
pub const MAX_AGE_HOURS: i64 = 8;

/// Most sessions held at once; signing in beyond it drops the oldest (a bound on memory).
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// Who signed in (the token's id and scope).
    pub principal: Principal,
    /// The CSRF token of its forms: 64 lower-case hex digits.
    pub csrf: String,
    /// Sign-in time, UTC.
    pub created: DateTime<Utc>,
    /// Time of the last request, UTC.
    pub last_seen: DateTime<Utc>,
}

impl Session {
    /// Whether the session has ended at `now` (idle or too old).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now - self.last_seen > Duration::minutes(IDLE_TIMEOUT_MINUTES) || now - self.created > Duration::hours(MAX_AGE_HOURS)
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), presented.as_bytes())
    }
}

/// The sessions held, by digest of their id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_digest: HashMap<[u8; 32], Session>,
}

impl Sessions {
    /// Opens a session for `principal`; `id_bytes` and `csrf_bytes` are 32 random bytes each.
    /// Returns the session id to set in the cookie (`s_` then 64 hex digits) and the session.
    /// Expired sessions are dropped first, then the oldest if [`MAX_SESSIONS`] are held.
    pub fn open(&mut self, principal: Principal, id_bytes: &[u8; 32], csrf_bytes: &[u8; 32], now: DateTime<Utc>) -> (String, Session) {
        self.by_digest.retain(|_, s| !s.expired(now));
        if self.by_digest.len() >= MAX_SESSIONS
            && let Some(oldest) = self.by_digest.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            self.by_digest.remove(&oldest);
        }
        let id = format!("s_{}", hex(id_bytes));
        let session = Session { principal, csrf: hex(csrf_bytes), created: now, last_seen: now };
        self.by_digest.insert(digest(&id), session.clone());
        (id, session)
    }

    /// The live session of a presented id, its last request moved to `now`; `None` for an
    /// unknown, malformed or expired id (an expired one is dropped).
    pub fn touch(&mut self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        if !is_session_id(id) {
            return None;
        }
        let key = digest(id);
        let s = self.by_digest.get_mut(&key)?;
        if s.expired(now) {
            self.by_digest.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends a session (sign-out). Returns whether it was held.
    pub fn close(&mut self, id: &str) -> bool {
        is_session_id(id) && self.by_digest.remove(&digest(id)).is_some()
    }

    /// Ends every session of a token (when it is revoked).
    pub fn close_token(&mut self, token_id: u64) {
        self.by_digest.retain(|_, s| s.principal.token_id != token_id);
    }

    /// Number of sessions held (expired ones included until the next sign-in drops them).
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

/// Whether `id` has the shape of a session id (`s_` then 64 lower-case hex digits).
fn is_session_id(id: &str) -> bool {
    id.strip_prefix("s_").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn digest(id: &str) -> [u8; 32] {
    sha2::Sha256::digest(id.as_bytes()).into()
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Byte equality whose time does not depend on where the inputs differ (it depends only on
/// their lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::TokenScope;
    use crate::core::domain::InseeCode;

    fn at(h: i64, m: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T08:00:00Z").unwrap().with_timezone(&Utc) + Duration::hours(h) + Duration::minutes(m)
    }

    fn p() -> Principal {
        Principal { token_id: 7, scope: TokenScope::Commune(InseeCode::parse("29195").unwrap()) }
    }

    #[test]
    fn a_session_lives_while_used_and_ends_idle_or_old() {
        let mut s = Sessions::default();
        let (id, first) = s.open(p(), &[1; 32], &[2; 32], at(0, 0));
        assert_eq!(id, format!("s_{}", "01".repeat(32)));
        assert_eq!(first.csrf, "02".repeat(32));
        assert!(first.csrf_matches(&"02".repeat(32)) && !first.csrf_matches(&"03".repeat(32)) && !first.csrf_matches(""));
        // Used every 29 minutes it lives until 8 hours after sign-in, not a minute more.
        let mut t = 0;
        while t + 29 <= 8 * 60 {
            t += 29;
            assert!(s.touch(&id, at(0, t)).is_some(), "alive at +{t} min");
        }
        assert!(s.touch(&id, at(8, 1)).is_none(), "too old");
        assert!(s.is_empty(), "dropped");
        // Idle for 31 minutes it ends.
        let (id, _) = s.open(p(), &[3; 32], &[4; 32], at(0, 0));
        assert!(s.touch(&id, at(0, 30)).is_some());
        assert!(s.touch(&id, at(1, 1)).is_none());
    }

    #[test]
    fn only_the_exact_id_opens_a_session_and_sign_out_ends_it() {
        let mut s = Sessions::default();
        let (id, _) = s.open(p(), &[0xab; 32], &[0; 32], at(0, 0));
        for bad in ["", "s_", &id[..40], &id.to_uppercase(), &format!("{id}0"), &id.replace("ab", "ac")] {
            assert!(s.touch(bad, at(0, 1)).is_none(), "{bad}");
        }
        assert_eq!(s.touch(&id, at(0, 1)).unwrap().principal, p());
        assert!(s.close(&id));
        assert!(!s.close(&id));
        assert!(s.touch(&id, at(0, 2)).is_none());
        // Revoking the token ends its sessions, not the others'.
        let (a, _) = s.open(p(), &[5; 32], &[0; 32], at(0, 0));
        let other = Principal { token_id: 8, scope: TokenScope::Admin };
        let (b, _) = s.open(other, &[6; 32], &[0; 32], at(0, 0));
        s.close_token(7);
        assert!(s.touch(&a, at(0, 1)).is_none());
        assert_eq!(s.touch(&b, at(0, 1)).unwrap().principal, other);
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
