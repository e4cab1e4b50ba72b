//! How the store encodes its records: [`postcard`] (a compact, non-self-describing serde format)
//! behind a one-byte **format version**, from plain record structs of the store's own
//! ([`StoredAdoption`], [`StoredFeedback`], ...). The store's format is not the API's JSON: the
//! domain types keep their JSON shapes (custom `Serialize` impls, text dates, euros as numbers),
//! and these structs hold what the store needs in the smallest plain form (dates as days since
//! 0001-01-01, times as seconds and nanoseconds, amounts in cents, codes as raw bytes), so that
//! nothing in them depends on serde attributes postcard does not support.
//!
//! **A value** is `[FORMAT] ++ postcard(Stored…)`. A value whose first byte is `{` is a record of
//! the first store format (JSON of the domain type, before this module): it is still read, so
//! that a store half-way through its migration (`Store::migrate`) is whole. A
//! first byte that is neither is refused with a `Storage` error naming it (a store written by a
//! newer program). Keys are not encoded here: they stay as the store module describes them (the
//! ledger digests keys, so a migration leaves the ledger as it is).
//!
//! Format versions: `0` (no `format` key in `meta`): JSON values; `1`: postcard values as
//! below, one feedback record per key; `2`: the same record values, except that the `feedback`
//! tree holds one value per adoption, a [`FeedbackGroup`] (its first 256 records in id order;
//! later ones one per key, as before), instead of one per record: 4.2 M small values at
//! national scale became 0.9 M, which is what sled's size on disk, its memory at open and the
//! demo load's time follow (measured with `examples/store_layout.rs` of commit c698691, before
//! the change: 1,247 MB as stored, 669 MB grouped). A single record's value is the same
//! postcard layout in formats 1 and 2: [`decode`] reads both, and a migration from 1 rewrites
//! only the feedback tree (and empties `adoptions_by_commune`). A change to any `Stored…`
//! struct takes a new version, and a migration.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::core::auth::{Token, TokenScope};
use crate::core::domain::{GenerationId, InseeCode, Siren, Slug};
use crate::core::history::{Adoption, Feedback};
use crate::core::prices::{EstimateAuthor, EurHt, PriceBasis, PriceEstimate};
use crate::error::{Error, Result};

/// The format version this program writes: the first byte of every value, and the `meta` key
/// `format` once every value is of it.
pub const FORMAT: u8 = 2;

/// The first postcard format: its single-record values have the layout of [`FORMAT`]'s.
pub const FORMAT_POSTCARD_1: u8 = 1;

/// The format version of a store without a `format` key: JSON values.
pub const FORMAT_JSON: u8 = 0;

/// First byte of a JSON value (format 0).
const JSON_START: u8 = b'{';

/// A record kind the store keeps, with its plain stored form.
pub trait Codec: Sized + DeserializeOwned {
    /// The stored form (borrowing its text from the record or from the value being decoded).
    type Stored<'a>: Serialize + Deserialize<'a>
    where
        Self: 'a;
    /// What the record kind is called in errors.
    const WHAT: &'static str;
    /// The stored form of `self`.
    fn to_stored(&self) -> Self::Stored<'_>;
    /// The record back from its stored form. Errors: `Storage` for a field that does not
    /// parse (a damaged value).
    fn from_stored(s: Self::Stored<'_>) -> Result<Self>;
}

/// The format version of a value: [`FORMAT_JSON`] for a JSON value, else its first byte.
/// Errors: `Storage` for an empty value.
pub fn version_of(v: &[u8]) -> Result<u8> {
    match v.first() {
        Some(&JSON_START) => Ok(FORMAT_JSON),
        Some(&b) => Ok(b),
        None => Err(Error::storage_state("an empty record value")),
    }
}

/// `v` encoded as a value of the current format.
pub fn encode<T: Codec>(v: &T) -> Result<Vec<u8>> {
    postcard::to_extend(&v.to_stored(), vec![FORMAT]).map_err(|e| Error::storage(format!("encoding {}", T::WHAT), e))
}

/// Feedback records encoded as one [`FeedbackGroup`] value, without collecting them first (the
/// caller gives them in id order).
pub fn encode_group<'a>(records: impl IntoIterator<Item = &'a Feedback>) -> Result<Vec<u8>> {
    let stored: Vec<StoredFeedback<'a>> = records.into_iter().map(Feedback::to_stored).collect();
    postcard::to_extend(&stored, vec![FORMAT]).map_err(|e| Error::storage("encoding a feedback group", e))
}

/// A value of any format this program reads, decoded. Errors: `Storage` for a damaged value,
/// trailing bytes, or a format version newer than [`FORMAT`].
pub fn decode<T: Codec>(v: &[u8]) -> Result<T> {
    let bad = |e: &dyn std::fmt::Display| Error::storage_state(format!("a {} value that does not decode: {e}", T::WHAT));
    match version_of(v)? {
        FORMAT | FORMAT_POSTCARD_1 => {
            let (s, rest) = postcard::take_from_bytes::<T::Stored<'_>>(&v[1..]).map_err(|e| bad(&e))?;
            if !rest.is_empty() {
                return Err(bad(&format_args!("{} bytes after the record", rest.len())));
            }
            T::from_stored(s)
        }
        FORMAT_JSON => serde_json::from_slice(v).map_err(|e| bad(&e)),
        n => Err(too_new(&format!("a {} value", T::WHAT), n)),
    }
}

/// `v` (of any format) in the current layout; `None` when it already is (a postcard value of
/// format 1 or 2). Errors: as [`decode`].
pub fn upgrade<T: Codec>(v: &[u8]) -> Result<Option<Vec<u8>>> {
    if is_postcard(v)? {
        return Ok(None);
    }
    encode(&decode::<T>(v)?).map(Some)
}

/// Whether `v` is a postcard value this program reads as it is (format 1 or 2): what a snapshot
/// may hold. Errors: `Storage` for an empty value.
pub fn is_postcard(v: &[u8]) -> Result<bool> {
    Ok(matches!(version_of(v)?, FORMAT | FORMAT_POSTCARD_1))
}

/// The refusal of something written by a newer program.
pub fn too_new(what: &str, version: u8) -> Error {
    Error::storage_state(format!(
        "{what} is of store format version {version}, newer than this program reads (up to {FORMAT}): run the newer voisinage that wrote it, or restore a backup"
    ))
}

fn day(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

fn date(days: i32) -> Result<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| Error::storage_state(format!("a stored date out of range ({days} days)")))
}

fn instant(t: DateTime<Utc>) -> (i64, u32) {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn from_instant((secs, nanos): (i64, u32)) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos).ok_or_else(|| Error::storage_state(format!("a stored time out of range ({secs} s)")))
}

fn field<T>(r: Result<T>, what: &str) -> Result<T> {
    r.map_err(|e| Error::storage_state(format!("a stored {what} that does not parse: {e}")))
}

fn text<T>(s: &str, parse: fn(&str) -> Result<T>, what: &str) -> Result<T> {
    field(parse(s), what)
}

/// An adoption as stored ([`Adoption`]); dates in days since 0001-01-01.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredAdoption<'a> {
    id: u64,
    commune: [u8; 5],
    category: &'a str,
    product: &'a str,
    generation: Option<&'a str>,
    since: i32,
    until: Option<i32>,
    contract_end: Option<i32>,
    workstations: Option<u32>,
    simulated: bool,
}

impl Codec for Adoption {
    type Stored<'a> = StoredAdoption<'a>;
    const WHAT: &'static str = "adoption";

    fn to_stored(&self) -> StoredAdoption<'_> {
        StoredAdoption {
            id: self.id,
            commune: *self.commune.as_bytes(),
            category: self.category.as_str(),
            product: self.product.as_str(),
            generation: self.generation.as_ref().map(GenerationId::as_str),
            since: day(self.since),
            until: self.until.map(day),
            contract_end: self.contract_end.map(day),
            workstations: self.workstations,
            simulated: self.simulated,
        }
    }

    fn from_stored(s: StoredAdoption<'_>) -> Result<Adoption> {
        Ok(Adoption {
            id: s.id,
            commune: field(InseeCode::parse(std::str::from_utf8(&s.commune).unwrap_or("")), "INSEE code")?,
            category: text(s.category, Slug::parse, "category")?,
            product: text(s.product, Slug::parse, "product")?,
            generation: s.generation.map(|g| text(g, GenerationId::parse, "generation")).transpose()?,
            since: date(s.since)?,
            until: s.until.map(date).transpose()?,
            contract_end: s.contract_end.map(date).transpose()?,
            workstations: s.workstations,
            simulated: s.simulated,
        })
    }
}

/// A feedback record as stored ([`Feedback`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredFeedback<'a> {
    id: u64,
    adoption_id: u64,
    date: i32,
    reliability: u8,
    incidents: u32,
    downtime_hours: f64,
    support: u8,
    comment: Option<&'a str>,
    simulated: bool,
}

impl Codec for Feedback {
    type Stored<'a> = StoredFeedback<'a>;
    const WHAT: &'static str = "feedback";

    fn to_stored(&self) -> StoredFeedback<'_> {
        StoredFeedback {
            id: self.id,
            adoption_id: self.adoption_id,
            date: day(self.date),
            reliability: self.reliability,
            incidents: self.incidents,
            downtime_hours: self.downtime_hours,
            support: self.support,
            comment: self.comment.as_deref(),
            simulated: self.simulated,
        }
    }

    fn from_stored(s: StoredFeedback<'_>) -> Result<Feedback> {
        Ok(Feedback {
            id: s.id,
            adoption_id: s.adoption_id,
            date: date(s.date)?,
            reliability: s.reliability,
            incidents: s.incidents,
            downtime_hours: s.downtime_hours,
            support: s.support,
            comment: s.comment.map(str::to_string),
            simulated: s.simulated,
        })
    }
}

/// The feedback records of one adoption, as one value of the `feedback` tree (format 2): the
/// records in id order. Stored as the list of their [`StoredFeedback`] forms (each keeps its id
/// and adoption id, so that a group decodes to whole records).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct FeedbackGroup(pub Vec<Feedback>);

impl Codec for FeedbackGroup {
    type Stored<'a> = Vec<StoredFeedback<'a>>;
    const WHAT: &'static str = "feedback group";

    fn to_stored(&self) -> Vec<StoredFeedback<'_>> {
        self.0.iter().map(Feedback::to_stored).collect()
    }

    fn from_stored(s: Vec<StoredFeedback<'_>>) -> Result<FeedbackGroup> {
        s.into_iter().map(Feedback::from_stored).collect::<Result<_>>().map(FeedbackGroup)
    }
}

/// A token as stored ([`Token`]): its scope as text (`commune:29019`), times as seconds and
/// nanoseconds since 1970 (UTC).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredToken<'a> {
    id: u64,
    scope: String,
    label: &'a str,
    created: (i64, u32),
    revoked: Option<(i64, u32)>,
}

impl Codec for Token {
    type Stored<'a> = StoredToken<'a>;
    const WHAT: &'static str = "token";

    fn to_stored(&self) -> StoredToken<'_> {
        StoredToken { id: self.id, scope: self.scope.to_string(), label: &self.label, created: instant(self.created), revoked: self.revoked.map(instant) }
    }

    fn from_stored(s: StoredToken<'_>) -> Result<Token> {
        Ok(Token {
            id: s.id,
            scope: text(&s.scope, TokenScope::parse, "token scope")?,
            label: s.label.to_string(),
            created: from_instant(s.created)?,
            revoked: s.revoked.map(from_instant).transpose()?,
        })
    }
}

/// A price basis as stored.
#[derive(Debug, Serialize, Deserialize)]
pub enum StoredBasis {
    /// [`PriceBasis::PerCommune`].
    PerCommune,
    /// [`PriceBasis::PerSeat`].
    PerSeat,
}

/// A price estimate as stored ([`PriceEstimate`]): the amount in cents, the author flattened.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredPriceEstimate<'a> {
    id: u64,
    epci: &'a str,
    product: &'a str,
    generation: Option<&'a str>,
    basis: StoredBasis,
    amount_cents: u64,
    made_on: i32,
    by_token_id: u64,
    by_scope: String,
    by_name: &'a str,
    note: Option<&'a str>,
    recorded_at: (i64, u32),
}

impl Codec for PriceEstimate {
    type Stored<'a> = StoredPriceEstimate<'a>;
    const WHAT: &'static str = "price estimate";

    fn to_stored(&self) -> StoredPriceEstimate<'_> {
        StoredPriceEstimate {
            id: self.id,
            epci: self.epci.as_str(),
            product: self.product.as_str(),
            generation: self.generation.as_ref().map(GenerationId::as_str),
            basis: match self.basis {
                PriceBasis::PerCommune => StoredBasis::PerCommune,
                PriceBasis::PerSeat => StoredBasis::PerSeat,
            },
            amount_cents: self.amount_eur_ht.cents(),
            made_on: day(self.made_on),
            by_token_id: self.by.token_id,
            by_scope: self.by.scope.to_string(),
            by_name: &self.by.name,
            note: self.note.as_deref(),
            recorded_at: instant(self.recorded_at),
        }
    }

    fn from_stored(s: StoredPriceEstimate<'_>) -> Result<PriceEstimate> {
        Ok(PriceEstimate {
            id: s.id,
            epci: text(s.epci, Siren::parse, "SIREN")?,
            product: text(s.product, Slug::parse, "product")?,
            generation: s.generation.map(|g| text(g, GenerationId::parse, "generation")).transpose()?,
            basis: match s.basis {
                StoredBasis::PerCommune => PriceBasis::PerCommune,
                StoredBasis::PerSeat => PriceBasis::PerSeat,
            },
            amount_eur_ht: EurHt::from_cents(s.amount_cents),
            made_on: date(s.made_on)?,
            by: EstimateAuthor { token_id: s.by_token_id, scope: text(&s.by_scope, TokenScope::parse, "author scope")?, name: s.by_name.to_string() },
            note: s.note.map(str::to_string),
            recorded_at: from_instant(s.recorded_at)?,
        })
    }
}

/// The record an `Idempotency-Key` created (the `idem:` values of `meta`): the request's
/// fingerprint, the record's id and, for feedback, its adoption's id. The same struct in both
/// formats (plain fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// Fingerprint of the request body.
    pub fingerprint: u64,
    /// Id of the record created.
    pub id: u64,
    /// The adoption of a feedback record.
    pub adoption_id: Option<u64>,
}

impl Codec for IdemRecord {
    type Stored<'a> = IdemRecord;
    const WHAT: &'static str = "idempotency record";

    fn to_stored(&self) -> IdemRecord {
        self.clone()
    }

    fn from_stored(s: IdemRecord) -> Result<IdemRecord> {
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adoption() -> Adoption {
        Adoption {
            id: 1_234_567,
            commune: InseeCode::parse("2A004").unwrap(),
            category: Slug::parse("etat-civil").unwrap(),
            product: Slug::parse("openelec").unwrap(),
            generation: Some(GenerationId::parse("5 (2024)").unwrap()),
            since: NaiveDate::from_ymd_opt(2019, 3, 1).unwrap(),
            until: Some(NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()),
            contract_end: None,
            workstations: Some(12),
            simulated: true,
        }
    }

    #[test]
    fn records_round_trip_and_are_small() {
        let a = adoption();
        let v = encode(&a).unwrap();
        assert_eq!(v[0], FORMAT);
        assert_eq!(decode::<Adoption>(&v).unwrap(), a);
        let json = serde_json::to_vec(&a).unwrap();
        assert_eq!(decode::<Adoption>(&json).unwrap(), a, "a JSON value of the first format is read");
        assert_eq!((v.len(), json.len()), (50, 198), "bytes in this format and in JSON");
        let f = Feedback {
            id: 9,
            adoption_id: 1,
            date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            reliability: 4,
            incidents: 2,
            downtime_hours: 1.5,
            support: 3,
            comment: Some("lent".into()),
            simulated: false,
        };
        assert_eq!(decode::<Feedback>(&encode(&f).unwrap()).unwrap(), f);
        let mut v1 = encode(&f).unwrap();
        v1[0] = FORMAT_POSTCARD_1;
        assert_eq!(decode::<Feedback>(&v1).unwrap(), f, "a value of format 1 is read as it is");
        assert_eq!(upgrade::<Feedback>(&v1).unwrap(), None, "and not rewritten");
        let second = Feedback { id: 12, comment: None, ..f.clone() };
        let group = FeedbackGroup(vec![f.clone(), second]);
        let g = encode(&group).unwrap();
        assert_eq!(decode::<FeedbackGroup>(&g).unwrap(), group);
        // One version byte and a length for the group; each record as it is stored alone.
        assert_eq!(g.len(), 2 + (encode(&f).unwrap().len() - 1) + (encode(&group.0[1]).unwrap().len() - 1));
        let t = Token {
            id: 3,
            scope: TokenScope::parse("epci:243500139").unwrap(),
            label: "Rennes".into(),
            created: DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap(),
            revoked: None,
        };
        assert_eq!(decode::<Token>(&encode(&t).unwrap()).unwrap(), t);
        let e = PriceEstimate {
            id: 2,
            epci: Siren::parse("243500139").unwrap(),
            product: Slug::parse("openelec").unwrap(),
            generation: None,
            basis: PriceBasis::PerSeat,
            amount_eur_ht: EurHt::from_cents(5_200_050),
            made_on: NaiveDate::from_ymd_opt(2026, 10, 8).unwrap(),
            by: EstimateAuthor { token_id: 0, scope: TokenScope::Admin, name: "x".into() },
            note: None,
            recorded_at: DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
        };
        assert_eq!(decode::<PriceEstimate>(&encode(&e).unwrap()).unwrap(), e);
        assert!(upgrade::<Adoption>(&v).unwrap().is_none());
        assert_eq!(upgrade::<Adoption>(&json).unwrap(), Some(v));
    }

    #[test]
    fn damaged_or_newer_values_are_refused_with_a_storage_error() {
        let mut v = encode(&adoption()).unwrap();
        v.push(0);
        assert!(decode::<Adoption>(&v).unwrap_err().to_string().contains("1 bytes after the record"));
        v[0] = 3;
        let e = decode::<Adoption>(&v).unwrap_err();
        assert!(matches!(e, Error::Storage { .. }) && e.to_string().contains("store format version 3, newer than this program reads (up to 2)"), "{e}");
        assert!(matches!(decode::<Adoption>(&[FORMAT, 1, 2]), Err(Error::Storage { .. })));
        assert!(matches!(decode::<Adoption>(&[]), Err(Error::Storage { .. })));
    }
}
