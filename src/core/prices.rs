//! Estimated prices recorded by an EPCI, so that a groupement de commandes can name its
//! procurement procedure.
//!
//! The catalogue gives no price and must not invent one (`catalog-facts.md` has none). An EPCI
//! (its token, or an admin) records what it estimates an option costs on its territory: per
//! commune or per seat (workstation), in € HT over the contract, dated, with who made it. The
//! groupement then multiplies it by its volume and compares the pooled total with the dated
//! thresholds of `catalog/procurement.toml` ([`crate::core::pooling`]).
//!
//! Every estimate is kept (history); for one EPCI and one option, the estimate in force at a
//! date is the one [`estimate_for`] picks.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::core::auth::TokenScope;
use crate::core::catalog::Catalog;
use crate::core::domain::{GenerationId, Siren, Slug};
use crate::core::fr;
use crate::error::{Error, Result};

/// Largest estimate accepted for one commune or one seat: 10,000,000 € HT.
pub const MAX_ESTIMATE_EUR_HT: u64 = 10_000_000;

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// An amount in euros hors taxes, held in whole cents (no rounding drift). Serialised as a JSON
/// number of euros (`52000.5`); read from a JSON number with at most two decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EurHt(u64);

impl EurHt {
    /// The amount of `cents` hundredths of a euro.
    pub const fn from_cents(cents: u64) -> EurHt {
        EurHt(cents)
    }

    /// The amount of whole euros `eur`.
    pub const fn from_whole_euros(eur: u64) -> EurHt {
        EurHt(eur.saturating_mul(100))
    }

    /// The amount in cents.
    pub const fn cents(self) -> u64 {
        self.0
    }

    /// The amount in whole euros, rounded down (what threshold rows compare with: `x < 60,000`
    /// holds exactly when `floor(x) < 60,000`).
    pub const fn whole_euros(self) -> u64 {
        self.0 / 100
    }

    /// The amount in euros, as a number.
    pub fn euros(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// An estimate for one commune or one seat: a number of euros with at most two decimals,
    /// above 0 and at most [`MAX_ESTIMATE_EUR_HT`]. Errors: `Invalid` (422) naming the rule.
    pub fn estimate(eur: f64) -> Result<EurHt> {
        let max = MAX_ESTIMATE_EUR_HT as f64;
        if !eur.is_finite() || eur <= 0.0 || eur > max {
            return Err(Error::Invalid(format!("amount_eur_ht must be above 0 and at most {MAX_ESTIMATE_EUR_HT} € HT, got {eur}")));
        }
        let cents = (eur * 100.0).round();
        if (eur * 100.0 - cents).abs() > 1e-6 {
            return Err(Error::Invalid(format!("amount_eur_ht has at most two decimals (cents), got {eur}")));
        }
        Ok(EurHt(cents as u64))
    }

    /// `self × n`, saturating (a pooled total).
    pub fn times(self, n: u64) -> EurHt {
        EurHt(self.0.saturating_mul(n))
    }

    /// French display: `52 000 € HT`, `52 000,50 € HT` (digit groups separated by U+202F).
    pub fn fr(self) -> String {
        let (e, c) = (self.0 / 100, self.0 % 100);
        if c == 0 { format!("{} € HT", fr::int(e)) } else { format!("{},{c:02} € HT", fr::int(e)) }
    }
}

impl fmt::Display for EurHt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Reads an amount as a form gives it: `52000`, `52000.5`, `52 000,50`, `52 000 €` (spaces,
/// no-break spaces and a trailing `€` or `€ HT` ignored; comma or point for the decimals), then
/// checks it as [`EurHt::estimate`]. Errors: `Malformed` for text that is not a number,
/// `Invalid` out of range.
impl FromStr for EurHt {
    type Err = Error;
    fn from_str(s: &str) -> Result<EurHt> {
        let t = s.trim().trim_end_matches("HT").trim_end().trim_end_matches('€');
        let t: String = t.chars().filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}')).map(|c| if c == ',' { '.' } else { c }).collect();
        let ok = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') && t.bytes().filter(|&b| b == b'.').count() <= 1;
        let x: f64 = t
            .parse()
            .ok()
            .filter(|_| ok)
            .ok_or_else(|| Error::Malformed(format!("'{}' is not an amount in euros (e.g. 52000 or 52 000,50)", s.chars().take(40).collect::<String>())))?;
        EurHt::estimate(x)
    }
}

impl Serialize for EurHt {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) { s.serialize_u64(self.0 / 100) } else { s.serialize_f64(self.euros()) }
    }
}

impl<'de> Deserialize<'de> for EurHt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        if !x.is_finite() || x < 0.0 {
            return Err(serde::de::Error::custom(format!("not an amount in euros: {x}")));
        }
        Ok(EurHt((x * 100.0).round() as u64))
    }
}

impl utoipa::PartialSchema for EurHt {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .minimum(Some(0.0))
            .description(Some("Amount in euros hors taxes (at most two decimals)"))
            .examples([serde_json::json!(52000)])
            .into()
    }
}

impl utoipa::ToSchema for EurHt {}

/// What an estimated price is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceBasis {
    /// For each commune of the groupement.
    PerCommune,
    /// For each seat (workstation) the communes of the groupement declared.
    PerSeat,
}

impl PriceBasis {
    /// French wording: `par commune`, `par poste`.
    pub fn fr(self) -> &'static str {
        match self {
            PriceBasis::PerCommune => "par commune",
            PriceBasis::PerSeat => "par poste",
        }
    }
}

/// Who made an estimate, as the audit trail names it: the token's id and scope, and a public
/// name derived from the scope (the EPCI's name; `administrateur de voisinage` for an admin token). The
/// token's own label is not copied: it is shown to admins only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EstimateAuthor {
    /// Id of the token used (0: the operator at the command line).
    pub token_id: u64,
    /// Its scope (`epci:243500139`, `admin`).
    pub scope: TokenScope,
    /// Public name: the EPCI's name for an EPCI token.
    pub name: String,
}

/// An estimated price of one option on an EPCI's territory, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceEstimate {
    /// Sequential id (1, 2, ...), in recording order.
    pub id: u64,
    /// SIREN of the EPCI whose estimate it is.
    pub epci: Siren,
    /// Catalogue product.
    pub product: Slug,
    /// Generation of the product as a groupement names its option (a release is recorded as
    /// its generation: `11-24h2-w` → `11`); `None`: every generation of the product.
    pub generation: Option<GenerationId>,
    /// Per commune or per seat.
    pub basis: PriceBasis,
    /// Estimated price for one commune or one seat, € HT over the contract, above 0 and at most
    /// 10,000,000.
    pub amount_eur_ht: EurHt,
    /// The day the estimate was made (not after the day it was recorded).
    pub made_on: NaiveDate,
    /// Who made it.
    pub by: EstimateAuthor,
    /// Free note (at most 500 characters; may hold personal data: shown only to tokens
    /// covering the EPCI).
    pub note: Option<String>,
    /// When it was recorded, UTC.
    pub recorded_at: chrono::DateTime<chrono::Utc>,
}

/// An estimate to record, checked by [`NewPriceEstimate::validate`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewPriceEstimate {
    /// SIREN of the EPCI.
    pub epci: Siren,
    /// Catalogue product.
    pub product: Slug,
    /// Generation or release of the product, if the estimate is for one.
    pub generation: Option<GenerationId>,
    /// Per commune or per seat.
    pub basis: PriceBasis,
    /// Price for one commune or one seat.
    pub amount_eur_ht: EurHt,
    /// Day the estimate was made.
    pub made_on: NaiveDate,
    /// Free note.
    pub note: Option<String>,
}

impl NewPriceEstimate {
    /// Checks it against the catalogue and `today`, and names its generation as groupements
    /// do (a release becomes its generation). Errors: `NotFound` for a product the catalogue
    /// does not list; `Invalid` for a generation the catalogue does not list for a product whose
    /// generations it lists, an amount out of 0 (excluded) to 10,000,000 € HT, a date after
    /// `today` or before 1980, a note over 500 characters or with control characters other
    /// than line breaks.
    pub fn validate(mut self, catalog: &Catalog, today: NaiveDate) -> Result<NewPriceEstimate> {
        let p = catalog.product(&self.product)?;
        if let Some(g) = &self.generation {
            if !p.generations.is_empty() && p.generation(g).is_none() {
                let known: Vec<&str> = p.generations.iter().map(|g| g.id.as_str()).collect();
                return Err(Error::Invalid(format!("product {} has no generation or release '{g}' (generations: {})", p.id, known.join(", "))));
            }
            self.generation = catalog.generation_key(&self.product, Some(g));
        }
        if self.amount_eur_ht.cents() == 0 || self.amount_eur_ht > EurHt::from_whole_euros(MAX_ESTIMATE_EUR_HT) {
            return Err(Error::Invalid(format!("amount_eur_ht must be above 0 and at most {MAX_ESTIMATE_EUR_HT} € HT")));
        }
        let min = NaiveDate::from_ymd_opt(1980, 1, 1).unwrap_or(NaiveDate::MIN);
        if self.made_on > today || self.made_on < min {
            return Err(Error::Invalid(format!("made_on {} is out of range ({min} to {today}: an estimate is not made in the future)", self.made_on)));
        }
        self.note = self.note.filter(|n| !n.trim().is_empty());
        if let Some(n) = &self.note
            && (n.chars().count() > MAX_NOTE_CHARS || n.chars().any(|c| c.is_control() && c != '\n' && c != '\r'))
        {
            return Err(Error::Invalid(format!("note must be at most {MAX_NOTE_CHARS} characters, without control characters")));
        }
        Ok(self)
    }

    /// The stored record: this estimate with its id, author and recording time.
    pub fn with_id(self, id: u64, by: EstimateAuthor, recorded_at: chrono::DateTime<chrono::Utc>) -> PriceEstimate {
        PriceEstimate {
            id,
            epci: self.epci,
            product: self.product,
            generation: self.generation,
            basis: self.basis,
            amount_eur_ht: self.amount_eur_ht,
            made_on: self.made_on,
            by,
            note: self.note,
            recorded_at,
        }
    }
}

/// The estimate in force on `date` for an option (`product`, and `generation` as the groupement
/// names it) among `estimates` (one EPCI's): of those made on or before `date` for this
/// product, one naming this generation wins over one for every generation of the product; then
/// the latest `made_on`; then the latest recorded. `None` when there is none.
pub fn estimate_for<'a>(estimates: &'a [PriceEstimate], product: &Slug, generation: Option<&GenerationId>, date: NaiveDate) -> Option<&'a PriceEstimate> {
    estimates
        .iter()
        .filter(|e| &e.product == product && e.made_on <= date && (e.generation.is_none() || e.generation.as_ref() == generation))
        .max_by_key(|e| (e.generation.is_some(), e.made_on, e.id))
}

/// Whether `e` is the estimate in force on `date` for its own product and generation among
/// `estimates` (for listing: the others are history).
pub fn in_force(estimates: &[PriceEstimate], e: &PriceEstimate, date: NaiveDate) -> bool {
    e.made_on <= date
        && estimates
            .iter()
            .filter(|x| x.product == e.product && x.generation == e.generation && x.made_on <= date)
            .max_by_key(|x| (x.made_on, x.id))
            .is_some_and(|x| x.id == e.id)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// An estimate of EPCI 200000001 (the small test territory's "CC Un").
    pub(crate) fn estimate(id: u64, product: &str, generation: Option<&str>, basis: PriceBasis, eur: u64, made_on: &str) -> PriceEstimate {
        PriceEstimate {
            id,
            epci: Siren::parse("200000001").unwrap(),
            product: Slug::parse(product).unwrap(),
            generation: generation.map(|g| GenerationId::parse(g).unwrap()),
            basis,
            amount_eur_ht: EurHt::from_whole_euros(eur),
            made_on: d(made_on),
            by: EstimateAuthor { token_id: 3, scope: TokenScope::Epci(Siren::parse("200000001").unwrap()), name: "CC Un".into() },
            note: None,
            recorded_at: chrono::DateTime::parse_from_rfc3339("2026-10-08T09:00:00Z").unwrap().to_utc(),
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(EurHt::estimate(52_000.0).unwrap().cents(), 5_200_000);
        assert_eq!(EurHt::estimate(0.01).unwrap().cents(), 1);
        assert_eq!(EurHt::estimate(10_000_000.0).unwrap().whole_euros(), 10_000_000);
        for bad in [0.0, -1.0, 10_000_000.01, f64::NAN, f64::INFINITY, 1.005] {
            assert_eq!(EurHt::estimate(bad).unwrap_err().status(), 422, "{bad}");
        }
        assert_eq!("52 000,50 €".parse::<EurHt>().unwrap().cents(), 5_200_050);
        assert_eq!("52\u{202f}000 € HT".parse::<EurHt>().unwrap().cents(), 5_200_000);
        assert_eq!("52000.5".parse::<EurHt>().unwrap().cents(), 5_200_050);
        assert_eq!("abc".parse::<EurHt>().unwrap_err().status(), 400);
        assert_eq!("1.2.3".parse::<EurHt>().unwrap_err().status(), 400);
        assert_eq!("0".parse::<EurHt>().unwrap_err().status(), 422);
        assert_eq!(EurHt::from_cents(5_200_000).fr(), "52\u{202f}000 € HT");
        assert_eq!(EurHt::from_cents(5_200_050).fr(), "52\u{202f}000,50 € HT");
        assert_eq!(serde_json::to_string(&EurHt::from_cents(5_200_000)).unwrap(), "52000");
        assert_eq!(serde_json::to_string(&EurHt::from_cents(5_200_050)).unwrap(), "52000.5");
        assert_eq!(serde_json::from_str::<EurHt>("52000.5").unwrap().cents(), 5_200_050);
    }

    #[test]
    fn validation() {
        let cat = crate::seeds::catalog().unwrap();
        let today = d("2026-11-29");
        let new = |product: &str, generation: Option<&str>, eur: u64, made_on: &str| NewPriceEstimate {
            epci: Siren::parse("243500139").unwrap(),
            product: Slug::parse(product).unwrap(),
            generation: generation.map(|g| GenerationId::parse(g).unwrap()),
            basis: PriceBasis::PerSeat,
            amount_eur_ht: EurHt::from_whole_euros(eur),
            made_on: d(made_on),
            note: Some("  ".into()),
        };
        // A release is recorded as its generation; a blank note as none.
        let ok = new("windows", Some("11-24h2-w"), 120, "2026-10-08").validate(&cat, today).unwrap();
        assert_eq!((ok.generation.unwrap().as_str(), ok.note), ("11", None));
        assert_eq!(new("nope", None, 120, "2026-10-08").validate(&cat, today).unwrap_err().status(), 404);
        assert_eq!(new("windows", Some("99"), 120, "2026-10-08").validate(&cat, today).unwrap_err().status(), 422);
        assert_eq!(new("windows", None, 0, "2026-10-08").validate(&cat, today).unwrap_err().status(), 422);
        assert_eq!(new("windows", None, 10_000_001, "2026-10-08").validate(&cat, today).unwrap_err().status(), 422);
        assert_eq!(new("windows", None, 120, "2026-11-30").validate(&cat, today).unwrap_err().status(), 422);
        let mut long = new("openelec", None, 120, "2026-11-29");
        long.note = Some("x".repeat(501));
        assert_eq!(long.validate(&cat, today).unwrap_err().status(), 422);
    }

    #[test]
    fn which_estimate_is_in_force() {
        let g11 = GenerationId::parse("11").unwrap();
        let w = Slug::parse("windows").unwrap();
        let list = vec![
            estimate(1, "windows", None, PriceBasis::PerSeat, 100, "2026-01-10"),
            estimate(2, "windows", Some("11"), PriceBasis::PerSeat, 150, "2026-02-10"),
            estimate(3, "windows", Some("11"), PriceBasis::PerSeat, 160, "2026-02-10"),
            estimate(4, "windows", None, PriceBasis::PerSeat, 90, "2026-05-10"),
            estimate(5, "windows", Some("11"), PriceBasis::PerCommune, 140, "2026-01-20"),
        ];
        // Before any: none; then the product-wide one; then the generation's, latest made, latest recorded.
        assert!(estimate_for(&list, &w, Some(&g11), d("2026-01-01")).is_none());
        assert_eq!(estimate_for(&list, &w, Some(&g11), d("2026-01-15")).unwrap().id, 1);
        assert_eq!(estimate_for(&list, &w, Some(&g11), d("2026-01-25")).unwrap().id, 5);
        assert_eq!(estimate_for(&list, &w, Some(&g11), d("2026-06-01")).unwrap().id, 3);
        // Another generation only meets the product-wide ones.
        assert_eq!(estimate_for(&list, &w, Some(&GenerationId::parse("10").unwrap()), d("2026-06-01")).unwrap().id, 4);
        assert!(estimate_for(&list, &Slug::parse("openelec").unwrap(), None, d("2026-06-01")).is_none());
        let current: Vec<u64> = list.iter().filter(|e| in_force(&list, e, d("2026-06-01"))).map(|e| e.id).collect();
        assert_eq!(current, vec![3, 4]);
    }
}
