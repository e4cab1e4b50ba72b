//! Access control: token scopes and the rules of who may write or read what.
//!
//! A bearer token carries one [`TokenScope`]. Reads of the catalogue, communes, recommendations and
//! pooled purchases are public; writes need a token whose scope covers the commune written to:
//!
//! | scope | writes adoptions and feedback of | reads free-text comments of | manages tokens |
//! |---|---|---|---|
//! | `commune:{code}` | that commune | that commune | no |
//! | `epci:{siren}` | the EPCI's member communes | the EPCI's members | no |
//! | `admin` | every commune | every commune | yes |
//!
//! An EPCI's own data (its price estimates for the groupements de commandes) is written by its
//! `epci:{siren}` token or `admin` ([`Principal::may_write_epci`]).
//!
//! Tokens are 256-bit random secrets shown once; only their SHA-256 digest is stored
//! ([`TokenHash`]). A secret's entropy makes a slow password hash unnecessary: the digest
//! cannot be reversed, and the lookup is by digest, so no secret is ever compared byte by byte.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::core::domain::{INSEE_CODE_PATTERN, InseeCode, SIREN_PATTERN, Siren};
use crate::error::Error;

/// Prefix of every token secret (`vsn_` then 64 lower-case hex digits = 256 bits).
pub const TOKEN_PREFIX: &str = "vsn_";

/// Longest accepted token label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// What a token may act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScope {
    /// One commune's adoptions and feedback (`commune:29019`).
    Commune(InseeCode),
    /// The adoptions and feedback of an EPCI's member communes (`epci:200067197`).
    Epci(Siren),
    /// Everything, including token management (`admin`).
    Admin,
}

impl TokenScope {
    /// Parses `commune:{INSEE code}`, `epci:{SIREN}` or `admin`. Errors: `Malformed` for any
    /// other text or a malformed code.
    pub fn parse(s: &str) -> Result<TokenScope, Error> {
        match s.split_once(':') {
            _ if s == "admin" => Ok(TokenScope::Admin),
            Some(("commune", code)) => Ok(TokenScope::Commune(InseeCode::parse(code)?)),
            Some(("epci", siren)) => Ok(TokenScope::Epci(Siren::parse(siren)?)),
            _ => Err(Error::Malformed(format!(
                "'{}' is not a scope: use commune:{{INSEE code}}, epci:{{SIREN}} or admin",
                s.chars().take(40).collect::<String>()
            ))),
        }
    }

    /// Whether this scope covers a commune whose EPCI is `epci` (`None`: in no EPCI): writing
    /// its adoptions and feedback, and reading its free-text comments.
    pub fn covers(&self, commune: &InseeCode, epci: Option<&Siren>) -> bool {
        match self {
            TokenScope::Admin => true,
            TokenScope::Commune(c) => c == commune,
            TokenScope::Epci(s) => epci == Some(s),
        }
    }

    /// Whether this scope may create, list and revoke tokens.
    pub fn is_admin(&self) -> bool {
        matches!(self, TokenScope::Admin)
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenScope::Commune(c) => write!(f, "commune:{c}"),
            TokenScope::Epci(s) => write!(f, "epci:{s}"),
            TokenScope::Admin => f.write_str("admin"),
        }
    }
}

impl Serialize for TokenScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TokenScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenScope::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for TokenScope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(format!("^(?:admin|commune:{}|epci:{})$", unanchored(INSEE_CODE_PATTERN), unanchored(SIREN_PATTERN))))
            .description(Some("Token scope: `commune:{code INSEE}`, `epci:{SIREN}` or `admin`"))
            .examples(["commune:29019"])
            .into()
    }
}

impl utoipa::ToSchema for TokenScope {}

/// A pattern without its `^` and `$`, to embed it in another.
fn unanchored(pattern: &str) -> &str {
    pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).unwrap_or(pattern)
}

/// SHA-256 digest of a token secret: what the store keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Digest of a presented secret. Errors: `Unauthorized` when the text does not have the
    /// token shape (`vsn_` + 64 hex digits), so that garbage never reaches the store.
    pub fn of_secret(secret: &str) -> Result<TokenHash, Error> {
        let hex = secret.strip_prefix(TOKEN_PREFIX).filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()));
        if hex.is_none() {
            return Err(Error::Unauthorized("the bearer token is not a voisinage token".into()));
        }
        Ok(TokenHash(sha2::Sha256::digest(secret.as_bytes()).into()))
    }

    /// The secret for 32 random bytes (the caller draws them from the operating system).
    pub fn secret_from_bytes(bytes: &[u8; 32]) -> String {
        let mut s = String::with_capacity(TOKEN_PREFIX.len() + 64);
        s.push_str(TOKEN_PREFIX);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// A token as stored and listed (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Token {
    /// Sequential id (1, 2, ...), used to name the token in logs and to revoke it.
    pub id: u64,
    /// What it may act on.
    pub scope: TokenScope,
    /// Free label given at creation (who holds it), at most 200 characters.
    pub label: String,
    /// Creation time, UTC.
    pub created: chrono::DateTime<chrono::Utc>,
    /// Revocation time, UTC; a revoked token is refused with 401.
    pub revoked: Option<chrono::DateTime<chrono::Utc>>,
}

/// Who is making a request: the token's id and scope (never the secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's id.
    pub token_id: u64,
    /// The token's scope.
    pub scope: TokenScope,
}

impl Principal {
    /// The operator at the command line (`voisinage token ...`): no token (id 0), every right.
    /// Its writes are audited like a token's, with `token=0 scope=admin`.
    pub const OPERATOR: Principal = Principal { token_id: 0, scope: TokenScope::Admin };

    /// `Ok` when the principal may write the commune's adoptions and feedback; `Forbidden`
    /// otherwise (another commune's data: OWASP API1, broken object level authorisation).
    pub fn may_write(&self, commune: &InseeCode, epci: Option<&Siren>) -> Result<(), Error> {
        if self.scope.covers(commune, epci) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("a token of scope {} may not write the data of commune {commune}", self.scope)))
        }
    }

    /// `Ok` when the principal may write the data of EPCI `siren` itself (its price
    /// estimates): its own EPCI token or admin; `Forbidden` otherwise (a commune token, another
    /// EPCI's token).
    pub fn may_write_epci(&self, siren: &Siren) -> Result<(), Error> {
        match self.scope {
            TokenScope::Admin => Ok(()),
            TokenScope::Epci(s) if s == *siren => Ok(()),
            _ => Err(Error::Forbidden(format!("a token of scope {} may not write the data of EPCI {siren}", self.scope))),
        }
    }

    /// `Ok` for an admin token, `Forbidden` otherwise.
    pub fn must_be_admin(&self) -> Result<(), Error> {
        if self.scope.is_admin() { Ok(()) } else { Err(Error::Forbidden(format!("managing tokens and backups needs an admin token, not {}", self.scope))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> InseeCode {
        InseeCode::parse(s).unwrap()
    }

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(TokenScope::parse("commune:29019").unwrap(), TokenScope::Commune(code("29019")));
        assert_eq!(TokenScope::parse("epci:242900314").unwrap().to_string(), "epci:242900314");
        assert_eq!(TokenScope::parse("admin").unwrap(), TokenScope::Admin);
        for bad in ["", "admin:", "commune:2901", "epci:24290031x", "root", "commune 29019"] {
            assert_eq!(TokenScope::parse(bad).unwrap_err().code(), "malformed-input", "{bad}");
        }
    }

    /// The scope's pattern in the OpenAPI document accepts exactly what the parser accepts.
    #[test]
    fn the_scope_pattern_is_the_parser() {
        let schema = serde_json::to_value(<TokenScope as utoipa::PartialSchema>::schema()).unwrap();
        let re = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        for s in [
            "admin",
            "commune:29019",
            "commune:2a004",
            "commune:2B033",
            "epci:242900314",
            "",
            "admin:",
            "Admin",
            "commune:2901",
            "commune:2C004",
            "epci:24290031x",
            "epci:2429003140",
            "root",
            "commune 29019",
            "commune:29019\n",
            " admin",
        ] {
            assert_eq!(re.is_match(s), TokenScope::parse(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn object_level_rules() {
        let brest = code("29019");
        let bm = Siren::parse("242900314").unwrap();
        let other = Siren::parse("200067197").unwrap();
        let p = |scope| Principal { token_id: 1, scope };
        assert!(p(TokenScope::Commune(brest)).may_write(&brest, Some(&bm)).is_ok());
        assert_eq!(p(TokenScope::Commune(brest)).may_write(&code("29020"), Some(&bm)).unwrap_err().status(), 403);
        assert!(p(TokenScope::Epci(bm)).may_write(&brest, Some(&bm)).is_ok());
        assert_eq!(p(TokenScope::Epci(other)).may_write(&brest, Some(&bm)).unwrap_err().status(), 403);
        // A commune in no EPCI (Ouessant) is covered by no EPCI token.
        assert!(p(TokenScope::Epci(bm)).may_write(&code("29155"), None).is_err());
        assert!(p(TokenScope::Admin).may_write(&code("29155"), None).is_ok());
        assert!(p(TokenScope::Epci(bm)).may_write_epci(&bm).is_ok());
        assert!(p(TokenScope::Admin).may_write_epci(&bm).is_ok());
        assert_eq!(p(TokenScope::Epci(other)).may_write_epci(&bm).unwrap_err().status(), 403);
        assert_eq!(p(TokenScope::Commune(brest)).may_write_epci(&bm).unwrap_err().status(), 403);
        assert!(p(TokenScope::Commune(brest)).must_be_admin().is_err());
        assert!(p(TokenScope::Admin).must_be_admin().is_ok());
    }

    #[test]
    fn secrets_have_256_bits_and_only_their_shape_is_hashed() {
        let s = TokenHash::secret_from_bytes(&[0xab; 32]);
        assert_eq!(s.len(), 4 + 64);
        assert!(s.starts_with("vsn_abab"));
        let h = TokenHash::of_secret(&s).unwrap();
        assert_ne!(h, TokenHash::of_secret(&TokenHash::secret_from_bytes(&[0xac; 32])).unwrap());
        // The standard SHA-256 of "vsn_" + "ab" x 32 (computed with Python's hashlib).
        let hex: String = h.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "20e42dd54446b113a1b8616715344e2b531c2fa52dfe8fa10c2b6ce8f1c926a6");
        for bad in ["", "vsn_", "Bearer x", &s[..60], &format!("{s}0"), &s.replace('a', "g")] {
            assert_eq!(TokenHash::of_secret(bad).unwrap_err().status(), 401, "{bad}");
        }
    }
}
