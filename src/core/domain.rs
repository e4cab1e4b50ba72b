//! Domain newtypes, parsed once at the edge and trusted inside.
//!
//! Every constructor here returns [`crate::error::Error::Malformed`] for text that does not have
//! the right shape; the rest of the crate never re-validates.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Code officiel géographique (COG) of a commune, as published by INSEE: exactly 5 ASCII
/// characters, digits except for Corsica whose department part is `2A` or `2B` (e.g. `2A004`).
///
/// Lower-case `2a`/`2b` is accepted and normalised to upper case. The code is an identifier, not
/// a number: `01001` keeps its leading zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InseeCode([u8; 5]);

impl InseeCode {
    /// Parses a code; `Err(Error::Malformed)` when it is not 5 characters of the COG shape.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        let bad = || Error::Malformed(format!("'{}' is not an INSEE commune code (5 characters, e.g. 35238 or 2A004)", truncate(s, 40)));
        if b.len() != 5 {
            return Err(bad());
        }
        let mut out = [0u8; 5];
        for (i, &c) in b.iter().enumerate() {
            let c = c.to_ascii_uppercase();
            let ok = c.is_ascii_digit() || (i == 1 && b[0] == b'2' && (c == b'A' || c == b'B'));
            if !ok {
                return Err(bad());
            }
            out[i] = c;
        }
        Ok(InseeCode(out))
    }

    /// Number of slots [`InseeCode::slot`] gives (every slot is below it).
    pub const SLOTS: usize = 102_000;

    /// The code's slot in a dense array by code: the code read as a number (`35238` → 35,238)
    /// and, for Corsica, 100,000 + 1,000 × (0 for `2A`, 1 for `2B`) + its last three digits
    /// (`2B033` → 101,033): one slot per code, below [`InseeCode::SLOTS`], with neighbouring
    /// communes (codes close in their department) in nearby slots.
    pub fn slot(&self) -> usize {
        let b = &self.0;
        // Only [`InseeCode::parse`] makes a code: every byte but the second of a Corsican code
        // is an ASCII digit.
        let number = |s: &[u8]| s.iter().fold(0usize, |n, &c| n * 10 + usize::from(c - b'0'));
        match b[1] {
            b'A' | b'B' => 100_000 + usize::from(b[1] - b'A') * 1000 + number(&b[2..]),
            _ => number(b),
        }
    }

    /// The code as text, e.g. `"35238"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("?????")
    }

    /// The department part: 2 characters (`35`, `2A`), or 3 for overseas departments (`971`).
    pub fn department(&self) -> &str {
        if self.0[0] == b'9' && self.0[1] == b'7' { &self.as_str()[..3] } else { &self.as_str()[..2] }
    }

    /// The 5 raw bytes, used as a fixed-width key prefix by the store.
    pub fn as_bytes(&self) -> &[u8; 5] {
        &self.0
    }
}

/// SIREN number of a legal entity (an EPCI, a commune): exactly 9 ASCII digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Siren([u8; 9]);

impl Siren {
    /// Parses a SIREN; `Err(Error::Malformed)` unless it is exactly 9 digits.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        if b.len() != 9 || !b.iter().all(u8::is_ascii_digit) {
            return Err(Error::Malformed(format!("'{}' is not a SIREN (9 digits, e.g. 243500139)", truncate(s, 40))));
        }
        let mut out = [0u8; 9];
        out.copy_from_slice(b);
        Ok(Siren(out))
    }

    /// The SIREN as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("?????????")
    }
}

/// A slug: 1 to 64 characters among `a-z`, `0-9` and `-`, used for category and product ids
/// (`etat-civil`, `libreoffice`). Shared text behind a thin pointer (`Arc<Box<str>>`, 8 bytes:
/// every adoption in memory holds two slugs and a generation id): clones are cheap and the
/// in-memory history keeps one copy of each distinct slug (see `AdoptionIndex`).
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct Slug(Arc<Box<str>>);

impl PartialEq for Slug {
    /// The same text; two handles of one interned copy compare without reading it.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl std::hash::Hash for Slug {
    /// The text's hash (equal slugs, same text: same hash).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl Slug {
    /// Parses a slug; `Err(Error::Malformed)` otherwise.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if ok {
            Ok(Slug(Arc::new(Box::from(s))))
        } else {
            Err(Error::Malformed(format!("'{}' is not an identifier (a-z, 0-9, '-', at most 64)", truncate(s, 40))))
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A product generation identifier within its product: 1 to 64 characters among ASCII letters,
/// digits, space and `. _ - + ( ) /`, not starting or ending with a space (`24.8`,
/// `11-24h2-w`, `ftth`, `5 (2024)`). Shared text behind a thin pointer, like [`Slug`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GenerationId(Arc<Box<str>>);

impl GenerationId {
    /// Parses a generation id; `Err(Error::Malformed)` when empty, longer than 64 characters,
    /// padded with spaces or holding control characters.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let ok = !s.is_empty() && s.len() <= 64 && s.trim() == s && s.bytes().all(|c| c.is_ascii_alphanumeric() || b" ._-+()/".contains(&c));
        if ok {
            Ok(GenerationId(Arc::new(Box::from(s))))
        } else {
            Err(Error::Malformed(format!("'{}' is not a generation id (1 to 64 printable characters)", truncate(s, 40))))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

macro_rules! text_newtype {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_newtype!(InseeCode);
text_newtype!(Siren);
text_newtype!(Slug);
text_newtype!(GenerationId);

/// Population class used to compare communes of similar size (INSEE population municipale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SizeClass {
    /// fewer than 500 inhabitants
    Under500,
    /// 500 to 1,999
    From500To1999,
    /// 2,000 to 3,499
    From2000To3499,
    /// 3,500 to 9,999
    From3500To9999,
    /// 10,000 or more
    Over10000,
}

impl SizeClass {
    /// The class of a population count.
    pub fn of(population: u32) -> Self {
        match population {
            0..=499 => SizeClass::Under500,
            500..=1999 => SizeClass::From500To1999,
            2000..=3499 => SizeClass::From2000To3499,
            3500..=9999 => SizeClass::From3500To9999,
            _ => SizeClass::Over10000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insee_codes() {
        assert_eq!(InseeCode::parse("35238").unwrap().as_str(), "35238");
        assert_eq!(InseeCode::parse("2A004").unwrap().as_str(), "2A004");
        assert_eq!(InseeCode::parse("2b033").unwrap().as_str(), "2B033");
        assert_eq!(InseeCode::parse("2A004").unwrap().department(), "2A");
        assert_eq!(InseeCode::parse("97101").unwrap().department(), "971");
        for bad in ["3523", "352388", "3A238", "35 38", "", "2C004", "١٢٣٤٥", "35238\n"] {
            assert!(InseeCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sirens() {
        assert_eq!(Siren::parse("243500139").unwrap().as_str(), "243500139");
        for bad in ["24350013", "2435001390", "24350013a", ""] {
            assert!(Siren::parse(bad).is_err());
        }
    }

    #[test]
    fn slugs_and_generations() {
        assert!(Slug::parse("etat-civil").is_ok());
        assert!(Slug::parse("Etat").is_err());
        assert!(GenerationId::parse("11-24h2-w").is_ok());
        assert!(GenerationId::parse(" 4").is_err());
        assert!(GenerationId::parse("").is_err());
        assert!(GenerationId::parse("4\u{202e}").is_err(), "no bidi override");
    }

    #[test]
    fn size_classes() {
        assert_eq!(SizeClass::of(499), SizeClass::Under500);
        assert_eq!(SizeClass::of(500), SizeClass::From500To1999);
        assert_eq!(SizeClass::of(3500), SizeClass::From3500To9999);
        assert_eq!(SizeClass::of(230_000), SizeClass::Over10000);
    }
}

/// What [`InseeCode::parse`] accepts, as an OpenAPI (ECMA-262) pattern: 5 digits, or `2A`/`2B`
/// (either case) and 3 digits. `tests` below check the two agree.
pub const INSEE_CODE_PATTERN: &str = "^(?:[0-9]{5}|2[ABab][0-9]{3})$";

/// What [`Siren::parse`] accepts: 9 ASCII digits.
pub const SIREN_PATTERN: &str = "^[0-9]{9}$";

/// What [`Slug::parse`] accepts: 1 to 64 of `a-z`, `0-9`, `-`.
pub const SLUG_PATTERN: &str = "^[a-z0-9-]{1,64}$";

/// What [`GenerationId::parse`] accepts: 1 to 64 of ASCII letters, digits, space and
/// `. _ - + ( ) /`, not starting or ending with a space.
pub const GENERATION_PATTERN: &str = "^[A-Za-z0-9._+()/-](?:[A-Za-z0-9 ._+()/-]{0,62}[A-Za-z0-9._+()/-])?$";

/// OpenAPI schemas of the domain newtypes: strings with the shape their parsers accept.
mod schema {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

    fn string(pattern: &str, description: &str, example: &str) -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(Some(description)).examples([example]).into()
    }

    macro_rules! string_schema {
        ($t:ty, $pattern:expr, $description:expr, $example:expr) => {
            impl utoipa::PartialSchema for $t {
                fn schema() -> RefOr<Schema> {
                    string($pattern, $description, $example)
                }
            }
            impl utoipa::ToSchema for $t {}
        };
    }

    string_schema!(
        super::InseeCode,
        super::INSEE_CODE_PATTERN,
        "Code officiel géographique (INSEE) of a commune: 5 digits, or 2A/2B and 3 digits for Corsica (lower case accepted)",
        "29019"
    );
    string_schema!(super::Siren, super::SIREN_PATTERN, "SIREN of an EPCI (9 digits)", "242900314");
    string_schema!(super::Slug, super::SLUG_PATTERN, "Catalogue identifier (lower-case letters, digits, hyphens)", "poste-de-travail");
    string_schema!(super::GenerationId, super::GENERATION_PATTERN, "Generation (or release) of a product, as in the catalogue", "11-24h2-w");
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(s)
    }

    /// Every 5-character string over an alphabet of digits, the Corsican letters in both cases,
    /// other letters, a space, a newline and a non-ASCII digit: the pattern of the OpenAPI
    /// document accepts exactly what the parser accepts; likewise for other lengths.
    #[test]
    fn the_insee_code_pattern_is_the_parser() {
        let alphabet = ['0', '2', '9', 'A', 'B', 'a', 'b', 'C', ' ', '\n', '١'];
        let re = regex::Regex::new(INSEE_CODE_PATTERN).unwrap();
        let mut accepted = 0;
        let mut word = [0usize; 5];
        loop {
            let s: String = word.iter().map(|&i| alphabet[i]).collect();
            assert_eq!(re.is_match(&s), InseeCode::parse(&s).is_ok(), "{s:?}");
            accepted += usize::from(re.is_match(&s));
            let mut i = 0;
            while i < 5 && word[i] == alphabet.len() - 1 {
                word[i] = 0;
                i += 1;
            }
            if i == 5 {
                break;
            }
            word[i] += 1;
        }
        // 3^5 all-digit codes, plus 2A/2B/2a/2b followed by 3 digits.
        assert_eq!(accepted, 243 + 4 * 27);
        for s in ["2a004", "2B033", "35238", "01001", "3523", "352388", "35238\n", "", "2C004", "A2004"] {
            assert_eq!(re.is_match(s), InseeCode::parse(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn the_other_patterns_are_their_parsers() {
        for s in ["243500139", "242900314", "24350013", "2435001390", "24350013a", "", "243500139\n", "２43500139"] {
            assert_eq!(matches(SIREN_PATTERN, s), Siren::parse(s).is_ok(), "{s:?}");
        }
        let long = "a".repeat(65);
        for s in ["etat-civil", "a", "Etat", "", "état", "a_b", "a b", long.as_str(), &long[1..]] {
            assert_eq!(matches(SLUG_PATTERN, s), Slug::parse(s).is_ok(), "{s:?}");
        }
        let long = "1".repeat(65);
        for s in ["11-24h2-w", "24.8", "5 (2024)", "x", " 4", "4 ", "", "4\u{202e}", "a/b+c", "a\tb", long.as_str(), &long[1..], "é"] {
            assert_eq!(matches(GENERATION_PATTERN, s), GenerationId::parse(s).is_ok(), "{s:?}");
        }
    }
}
