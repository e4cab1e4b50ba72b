//! Adoptions (which commune runs which product generation, since when) and feedback (how it
//! went), and the in-memory index the recommender reads.
//!
//! The store is the durable source; this index is rebuilt from it at start and updated after
//! each acknowledged write.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use fnv::FnvHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::core::catalog::{Catalog, months_between};
use crate::core::domain::{GenerationId, InseeCode, Slug};
use crate::core::packed::{PackedReports, Reports};
use crate::core::shared::{Chunks, RankedBits, ShardedMap, prefetch};
use crate::error::{Error, Result};
use std::sync::{Arc, RwLock};

/// A commune's use of a product generation for a category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Adoption {
    /// Identifier, unique in the store.
    pub id: u64,
    /// The commune.
    pub commune: InseeCode,
    /// The category it serves (one of the product's categories).
    pub category: Slug,
    /// The product.
    pub product: Slug,
    /// The generation, when known (`None` for products whose generations are not public).
    pub generation: Option<GenerationId>,
    /// First day in service.
    pub since: NaiveDate,
    /// Last day in service (`None` = still in service).
    pub until: Option<NaiveDate>,
    /// End of the contract (maintenance, licence), where registered.
    pub contract_end: Option<NaiveDate>,
    /// Number of workstations covered, where relevant and known.
    pub workstations: Option<u32>,
    /// True for records made by the demo simulator: never real opinions.
    pub simulated: bool,
}

impl Adoption {
    /// Whether the adoption is in service on `date`.
    pub fn active_on(&self, date: NaiveDate) -> bool {
        self.since <= date && self.until.is_none_or(|u| u > date)
    }

    /// Whole months in service up to `date` (or to `until` if earlier); 0 if not started.
    pub fn months_in_service(&self, date: NaiveDate) -> i64 {
        let end = self.until.map_or(date, |u| u.min(date));
        months_between(self.since, end).max(0)
    }
}

/// What a commune reports about an adoption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feedback {
    /// Identifier, unique in the store.
    pub id: u64,
    /// The adoption it is about.
    pub adoption_id: u64,
    /// Date of the report.
    pub date: NaiveDate,
    /// Reliability, 1 (unusable) to 5 (never fails).
    pub reliability: u8,
    /// Incidents since the previous report.
    pub incidents: u32,
    /// Hours of downtime since the previous report.
    pub downtime_hours: f64,
    /// Quality of the vendor's or integrator's support, 1 to 5.
    pub support: u8,
    /// Free text; may hold personal data, so never returned by public endpoints.
    pub comment: Option<String>,
    /// True for records made by the demo simulator.
    pub simulated: bool,
}

/// A feedback record as the scoring and the ratings read it, without its adoption (the record's
/// place in the index) and its comment (rare, kept aside: [`AdoptionIndex::feedback`] gives back
/// whole records). The index keeps them packed, a few bytes each ([`PackedReports`]), and gives
/// them back decoded ([`Reports`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Report {
    /// Identifier of the feedback record, unique in the store.
    pub id: u64,
    /// Hours of downtime since the previous report.
    pub downtime_hours: f64,
    /// Date of the report.
    pub date: NaiveDate,
    /// Incidents since the previous report.
    pub incidents: u32,
    /// Reliability, 1 (unusable) to 5 (never fails).
    pub reliability: u8,
    /// Quality of the vendor's or integrator's support, 1 to 5.
    pub support: u8,
    /// True for records made by the demo simulator.
    pub simulated: bool,
}

impl From<&Feedback> for Report {
    fn from(f: &Feedback) -> Report {
        Report {
            id: f.id,
            downtime_hours: f.downtime_hours,
            date: f.date,
            incidents: f.incidents,
            reliability: f.reliability,
            support: f.support,
            simulated: f.simulated,
        }
    }
}

impl Report {
    /// The whole record: this report on `adoption_id`, with its `comment`.
    pub fn to_feedback(&self, adoption_id: u64, comment: Option<&str>) -> Feedback {
        Feedback {
            id: self.id,
            adoption_id,
            date: self.date,
            reliability: self.reliability,
            incidents: self.incidents,
            downtime_hours: self.downtime_hours,
            support: self.support,
            comment: comment.map(str::to_string),
            simulated: self.simulated,
        }
    }
}

/// A validated request to record an adoption (the id is given by the store).
#[derive(Clone, Debug)]
pub struct NewAdoption {
    /// INSEE code of the commune (a seeded commune).
    pub commune: InseeCode,
    /// Category slug it serves (one of the product's categories).
    pub category: Slug,
    /// Product id (a catalogue slug).
    pub product: Slug,
    /// Generation id when known; `None` for products whose generations are not public.
    pub generation: Option<GenerationId>,
    /// First day in service.
    pub since: NaiveDate,
    /// Last day in service; `None` = still in service.
    pub until: Option<NaiveDate>,
    /// End of the contract (maintenance, licence), where registered.
    pub contract_end: Option<NaiveDate>,
    /// Number of workstations covered, where relevant and known.
    pub workstations: Option<u32>,
}

/// Most workstations an adoption may cover.
pub const MAX_WORKSTATIONS: u32 = 100_000;

/// Earliest date accepted in adoptions and feedback.
pub const MIN_DATE: (i32, u32, u32) = (1980, 1, 1);

/// The field of an adoption request that a rule refused (named as in the API's JSON body; the
/// inventory spreadsheet's French column is [`AdoptionField::column`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdoptionField {
    /// `product` (`produit`).
    Product,
    /// `category` (`categorie`).
    Category,
    /// `generation` (`generation`).
    Generation,
    /// `since` (`depuis`).
    Since,
    /// `until` (no column: the inventory declares what runs).
    Until,
    /// `contract_end` (`fin_contrat`).
    ContractEnd,
    /// `workstations` (`postes`).
    Workstations,
}

impl AdoptionField {
    /// The column of the inventory spreadsheet that holds this field.
    pub fn column(self) -> &'static str {
        match self {
            AdoptionField::Product => "produit",
            AdoptionField::Category => "categorie",
            AdoptionField::Generation => "generation",
            AdoptionField::Since => "depuis",
            AdoptionField::Until => "jusqu_au",
            AdoptionField::ContractEnd => "fin_contrat",
            AdoptionField::Workstations => "postes",
        }
    }
}

/// Why an adoption request was refused: the field at fault, the error the API answers (English
/// detail) and the same reason in French (the inventory report).
#[derive(Debug)]
pub struct AdoptionFault {
    /// The field at fault.
    pub field: AdoptionField,
    /// The API's error (`NotFound` for an unknown product, `Invalid` otherwise).
    pub error: Error,
    /// The reason, in French.
    pub fr: String,
}

fn fault(field: AdoptionField, error: Error, fr: String) -> AdoptionFault {
    AdoptionFault { field, error, fr }
}

fn check_date(field: AdoptionField, what: &str, d: NaiveDate, today: NaiveDate, future_ok: bool) -> std::result::Result<(), AdoptionFault> {
    let min = NaiveDate::from_ymd_opt(MIN_DATE.0, MIN_DATE.1, MIN_DATE.2).unwrap_or(NaiveDate::MIN);
    let max = if future_ok { today + chrono::Days::new(366 * 30) } else { today + chrono::Days::new(1) };
    if d < min || d > max {
        let fr = if d > max && !future_ok {
            format!("la date {d} est dans le futur (au plus tard le {max})")
        } else {
            format!("la date {d} est hors de la plage admise ({min} à {max})")
        };
        return Err(fault(field, Error::Invalid(format!("{what} {d} is out of range ({min} to {max})")), fr));
    }
    Ok(())
}

impl NewAdoption {
    /// Checks the request against the catalogue: the product serves the category; a product with
    /// known generations needs one of them or one of their releases (`11` or `11-24h2-w`); dates within range and `until` not before `since`.
    /// Errors: `NotFound` for an unknown product, `Invalid` for the rest (see
    /// [`NewAdoption::check`] for the field at fault and a French reason).
    pub fn validate(&self, catalog: &Catalog, today: NaiveDate) -> Result<()> {
        self.check(catalog, today).map_err(|f| f.error)
    }

    /// The rules of [`NewAdoption::validate`] (the one set of rules of the API and of the
    /// inventory upload), naming the field at fault and the reason in French.
    pub fn check(&self, catalog: &Catalog, today: NaiveDate) -> std::result::Result<(), AdoptionFault> {
        use AdoptionField as F;
        let p = catalog.product(&self.product).map_err(|e| fault(F::Product, e, format!("le produit « {} » n'est pas au catalogue", self.product)))?;
        if !p.categories.contains(&self.category) {
            let cats: Vec<&str> = p.categories.iter().map(Slug::as_str).collect();
            return Err(fault(
                F::Product,
                Error::Invalid(format!("product {} does not serve category {} (it serves: {})", p.id, self.category, cats.join(", "))),
                format!("le produit {} ne sert pas la catégorie {} (il sert : {})", p.id, self.category, cats.join(", ")),
            ));
        }
        match &self.generation {
            Some(g) if !p.generations.is_empty() && p.generation(g).is_none() => {
                let known: Vec<&str> = p.generations.iter().map(|g| g.id.as_str()).collect();
                return Err(fault(
                    F::Generation,
                    Error::Invalid(format!(
                        "product {} has no generation or release '{g}' (generations: {}; or one of their releases)",
                        p.id,
                        known.join(", ")
                    )),
                    format!(
                        "le produit {} n'a pas de génération ni de version « {g} » (générations : {} ; ou l'une de leurs versions)",
                        p.id,
                        known.join(", ")
                    ),
                ));
            }
            None if !p.generations.is_empty() => {
                let known: Vec<&str> = p.generations.iter().map(|g| g.id.as_str()).collect();
                return Err(fault(
                    F::Generation,
                    Error::Invalid(format!("product {} needs a generation", p.id)),
                    format!("la génération est obligatoire pour le produit {} (générations : {})", p.id, known.join(", ")),
                ));
            }
            _ => {}
        }
        // A release's own date, else its generation's (the first release's).
        if let Some(r) = self.generation.as_ref().and_then(|g| p.release(g).or_else(|| p.generation(g))).and_then(|g| g.released)
            && self.since < r
        {
            let g = self.generation.as_ref().map_or("", |g| g.as_str());
            return Err(fault(
                F::Since,
                Error::Invalid(format!("since {} is before the release of {} {g} ({r})", self.since, p.id)),
                format!("la date {} est antérieure à la sortie de {} {g} ({r})", self.since, p.id),
            ));
        }
        check_date(F::Since, "since", self.since, today, false)?;
        if let Some(u) = self.until {
            check_date(F::Until, "until", u, today, false)?;
            if u < self.since {
                return Err(fault(
                    F::Until,
                    Error::Invalid("until is before since".into()),
                    format!("la fin de service {u} est antérieure à la mise en service {}", self.since),
                ));
            }
        }
        if let Some(c) = self.contract_end {
            check_date(F::ContractEnd, "contract_end", c, today, true)?;
            if c < self.since {
                return Err(fault(
                    F::ContractEnd,
                    Error::Invalid("contract_end is before since".into()),
                    format!("la fin de contrat {c} est antérieure à la mise en service {}", self.since),
                ));
            }
        }
        if let Some(w) = self.workstations.filter(|&w| w > MAX_WORKSTATIONS) {
            return Err(fault(F::Workstations, Error::Invalid("workstations must be at most 100000".into()), format!("{w} postes : au plus 100 000")));
        }
        Ok(())
    }

    /// Refuses a second adoption of the same product generation for the same category that
    /// would be in service at the same time as one already recorded. Errors: `Conflict`.
    pub fn check_duplicate(&self, history: &AdoptionIndex) -> Result<()> {
        self.check_duplicate_except(history, None)
    }

    /// [`NewAdoption::check_duplicate`], ignoring adoption `except` (the one being changed).
    pub fn check_duplicate_except(&self, history: &AdoptionIndex, except: Option<u64>) -> Result<()> {
        if let Some(a) = self.duplicate_of(history, except) {
            return Err(Error::Conflict(format!("commune {} already has this adoption in service over the same period (adoption {})", self.commune, a.id)));
        }
        Ok(())
    }

    /// The recorded adoption (other than `except`) that this request would duplicate: the same
    /// commune, category, product and generation, in service over an overlapping period or
    /// starting the same day. The rule of [`NewAdoption::check_duplicate`].
    pub fn duplicate_of<'h>(&self, history: &'h AdoptionIndex, except: Option<u64>) -> Option<&'h Adoption> {
        let overlap =
            |a: &Adoption| a.since.max(self.since) < a.until.unwrap_or(NaiveDate::MAX).min(self.until.unwrap_or(NaiveDate::MAX)) || a.since == self.since;
        history
            .of_commune_in(&self.commune, &self.category)
            .find(|a| Some(a.id) != except && a.product == self.product && a.generation == self.generation && overlap(a))
    }

    /// The request an adoption would have been (to re-validate a change).
    pub fn of(a: &Adoption) -> NewAdoption {
        NewAdoption {
            commune: a.commune,
            category: a.category.clone(),
            product: a.product.clone(),
            generation: a.generation.clone(),
            since: a.since,
            until: a.until,
            contract_end: a.contract_end,
            workstations: a.workstations,
        }
    }

    /// The adoption with its id.
    pub fn with_id(self, id: u64, simulated: bool) -> Adoption {
        Adoption {
            id,
            commune: self.commune,
            category: self.category,
            product: self.product,
            generation: self.generation,
            since: self.since,
            until: self.until,
            contract_end: self.contract_end,
            workstations: self.workstations,
            simulated,
        }
    }
}

/// A validated feedback request.
#[derive(Clone, Debug)]
pub struct NewFeedback {
    /// Date of the report (not before the adoption's start).
    pub date: NaiveDate,
    /// Reliability, 1 (unusable) to 5 (never fails).
    pub reliability: u8,
    /// Incidents since the previous report.
    pub incidents: u32,
    /// Hours of downtime since the previous report, 0 or more.
    pub downtime_hours: f64,
    /// Quality of the vendor's or integrator's support, 1 to 5.
    pub support: u8,
    /// Free text; may hold personal data, so never returned by public endpoints.
    pub comment: Option<String>,
}

/// Longest accepted comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

impl NewFeedback {
    /// Range checks: ratings 1-5, incidents at most 100,000, downtime 0 to 8,784 hours (a leap
    /// year), comment at most 2,000 characters, date not before the adoption nor in the future.
    /// Errors: `Invalid`.
    pub fn validate(&self, adoption: &Adoption, today: NaiveDate) -> Result<()> {
        if !(1..=5).contains(&self.reliability) {
            return Err(Error::Invalid(format!("reliability must be 1 to 5, got {}", self.reliability)));
        }
        if !(1..=5).contains(&self.support) {
            return Err(Error::Invalid(format!("support must be 1 to 5, got {}", self.support)));
        }
        if self.incidents > 100_000 {
            return Err(Error::Invalid("incidents must be at most 100000".into()));
        }
        if !self.downtime_hours.is_finite() || !(0.0..=8784.0).contains(&self.downtime_hours) {
            return Err(Error::Invalid("downtime_hours must be 0 to 8784".into()));
        }
        if self.comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
            return Err(Error::Invalid(format!("comment must be at most {MAX_COMMENT_CHARS} characters")));
        }
        check_date(AdoptionField::Since, "date", self.date, today, false).map_err(|f| f.error)?;
        if self.date < adoption.since {
            return Err(Error::Invalid(format!("feedback date {} is before the adoption started ({})", self.date, adoption.since)));
        }
        if let Some(u) = adoption.until.filter(|u| self.date > *u + chrono::Days::new(366)) {
            return Err(Error::Invalid(format!("feedback date {} is more than a year after the adoption ended ({u})", self.date)));
        }
        Ok(())
    }

    /// The feedback with its id.
    pub fn with_id(self, id: u64, adoption_id: u64, simulated: bool) -> Feedback {
        Feedback {
            id,
            adoption_id,
            date: self.date,
            reliability: self.reliability,
            incidents: self.incidents,
            downtime_hours: self.downtime_hours,
            support: self.support,
            comment: self.comment,
            simulated,
        }
    }
}

/// Summary of the feedback on one adoption. Serialised with `null` means when `n = 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ratings {
    /// Number of feedback records.
    pub n: u32,
    /// Mean reliability (1-5); 0 when `n = 0` (`null` in JSON).
    pub mean_reliability: f64,
    /// Mean support rating (1-5); 0 when `n = 0` (`null` in JSON).
    pub mean_support: f64,
    /// Total incidents reported.
    pub incidents: u32,
    /// Total downtime reported, hours.
    pub downtime_hours: f64,
}

/// Mean reliability (1-5 scale) under which a product counts as poorly rated by a commune.
pub const POOR_RATING: f64 = 2.5;

/// Fewest feedback records for a mean reliability to count as a poor rating (one bad report
/// is not enough).
pub const POOR_RATING_MIN_REPORTS: u32 = 2;

/// The "poorly rated" rule, shared by the recommender (upgrade paths), pooling (needs) and the
/// demo simulator (switching): a mean reliability (1-5) strictly under [`POOR_RATING`] over at
/// least [`POOR_RATING_MIN_REPORTS`] records (`n`).
pub fn is_poor_rating(mean_reliability: f64, n: u32) -> bool {
    n >= POOR_RATING_MIN_REPORTS && mean_reliability < POOR_RATING
}

impl Ratings {
    /// Summary of `feedback` given on or before `date`.
    fn of(feedback: Reports, date: NaiveDate) -> Ratings {
        let mut r = Ratings::default();
        for f in feedback.iter().filter(|f| f.date <= date) {
            r.n += 1;
            r.mean_reliability += f64::from(f.reliability);
            r.mean_support += f64::from(f.support);
            r.incidents = r.incidents.saturating_add(f.incidents);
            r.downtime_hours += f.downtime_hours;
        }
        if r.n > 0 {
            r.mean_reliability /= f64::from(r.n);
            r.mean_support /= f64::from(r.n);
        }
        r
    }
}

impl Serialize for Ratings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mean = |x: f64| (self.n > 0).then_some(x);
        let mut st = s.serialize_struct("Ratings", 5)?;
        st.serialize_field("n", &self.n)?;
        st.serialize_field("mean_reliability", &mean(self.mean_reliability))?;
        st.serialize_field("mean_support", &mean(self.mean_support))?;
        st.serialize_field("incidents", &self.incidents)?;
        st.serialize_field("downtime_hours", &self.downtime_hours)?;
        st.end()
    }
}

/// The JSON shape of [`Ratings`], for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RatingsShape {
    /// Number of feedback records.
    n: u32,
    /// Mean reliability (1-5); `null` without feedback.
    mean_reliability: Option<f64>,
    /// Mean support rating (1-5); `null` without feedback.
    mean_support: Option<f64>,
    /// Total incidents reported.
    incidents: u32,
    /// Total downtime reported, hours.
    downtime_hours: f64,
}

impl utoipa::PartialSchema for Ratings {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RatingsShape as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Ratings {}

/// Quality score of one feedback record on the 1-5 scale: the reliability rating, less
/// `incident_penalty` × ln(1 + incidents) and `downtime_penalty` × ln(1 + downtime hours),
/// clamped to 1-5.
pub fn quality_of(f: &Report, incident_penalty: f64, downtime_penalty: f64) -> f64 {
    (f64::from(f.reliability) - incident_penalty * f64::from(f.incidents).ln_1p() - downtime_penalty * f.downtime_hours.max(0.0).ln_1p()).clamp(1.0, 5.0)
}

/// What [`FeedbackSums`] are computed for: a reference date (records dated after it are left
/// out, ages are counted to it), the two quality penalties ([`quality_of`]) and the recency
/// half-life in months. Compared by value (the floats by their bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SumsBasis {
    today: NaiveDate,
    incident_penalty: u64,
    downtime_penalty: u64,
    half_life_months: u64,
}

impl SumsBasis {
    /// The basis of a recommendation at `today` with these parameters.
    pub fn new(today: NaiveDate, incident_penalty: f64, downtime_penalty: f64, half_life_months: f64) -> SumsBasis {
        SumsBasis {
            today,
            incident_penalty: incident_penalty.to_bits(),
            downtime_penalty: downtime_penalty.to_bits(),
            half_life_months: half_life_months.to_bits(),
        }
    }

    /// The reference date.
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    /// Recency weight of a record dated `date` (on or before the reference date):
    /// `0.5^(age / half_life)`, `age` in whole months ([`months_between`], 0 at least).
    pub fn recency(&self, date: NaiveDate) -> f64 {
        0.5f64.powf(months_between(date, self.today).max(0) as f64 / f64::from_bits(self.half_life_months))
    }

    /// [`quality_of`] with this basis's penalties.
    pub fn quality(&self, f: &Report) -> f64 {
        quality_of(f, f64::from_bits(self.incident_penalty), f64::from_bits(self.downtime_penalty))
    }

    /// The sums of `records` (in their order) dated on or before the reference date.
    fn sums(&self, records: impl IntoIterator<Item = Report>) -> FeedbackSums {
        let mut s = FeedbackSums::default();
        for f in records {
            s.add(self, &f);
        }
        s
    }
}

/// The sufficient statistics of one adoption's feedback for a [`SumsBasis`]: what the scoring
/// reads instead of the records. Kept by the index on every write ([`AdoptionIndex::keep_feedback_sums`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FeedbackSums {
    /// Records counted (dated on or before the reference date).
    pub n: u32,
    /// Σ r, `r` the recency weight ([`SumsBasis::recency`]), dimensionless.
    pub sum_r: f64,
    /// Σ r·q, `q` the quality on the 1-5 scale ([`SumsBasis::quality`]).
    pub sum_rq: f64,
    /// Σ q (unweighted).
    pub sum_q: f64,
    /// Σ of the reliability ratings (1-5 each), for the mean rating shown as evidence.
    pub sum_reliability: u32,
}

impl FeedbackSums {
    /// Counts one record if it is dated on or before the basis's date.
    fn add(&mut self, basis: &SumsBasis, f: &Report) {
        if f.date <= basis.today {
            let (r, q) = (basis.recency(f.date), basis.quality(f));
            self.n += 1;
            self.sum_r += r;
            self.sum_rq += r * q;
            self.sum_q += q;
            self.sum_reliability += u32::from(f.reliability);
        }
    }
}

/// [`FeedbackSums`] of every adoption of an index at one version, computed apart
/// ([`AdoptionIndex::feedback_sums`]) to be installed in it.
#[derive(Debug)]
pub struct FeedbackSumsTable {
    version: u64,
    sums: KeptSums,
}

impl FeedbackSumsTable {
    /// The [`AdoptionIndex::version`] the sums were computed at.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// [`FeedbackSums`] for one basis of the adoptions that can be scored on its date: those in
/// service on it or after it (no end, or an end after it) when the sums were computed or the
/// adoption added. The scoring reads the sums of adopters in service only, and an ended
/// adoption's reliability is read from its records ([`AdoptionIndex::feedback_sums_of`] gives
/// `None`): at national scale about a third of the adoptions have ended (in the simulated demo
/// history), and their sums took 32 bytes each.
/// An adoption given an end later keeps its sums; one whose end is taken back has none until
/// the sums are computed again (the next day), and is read from its records meanwhile: the
/// same figures within float rounding.
#[derive(Debug, Clone)]
struct KeptSums {
    basis: SumsBasis,
    /// Per adoption position, whether its sums are kept, and their rank in `sums`.
    kept: RankedBits,
    /// The sums of the adoptions kept, in position order.
    sums: Chunks<FeedbackSums, 12>,
}

impl KeptSums {
    /// Sums for `basis` of no adoption yet.
    fn new(basis: SumsBasis) -> Self {
        KeptSums { basis, kept: RankedBits::default(), sums: Chunks::default() }
    }

    /// Whether `a`'s sums are kept: in service on the basis's date or after it.
    fn keeps(&self, a: &Adoption) -> bool {
        a.until.is_none_or(|u| u > self.basis.today)
    }

    /// Takes the adoption at the next position, with `sums` (computed only if kept).
    fn push(&mut self, a: &Adoption, sums: impl FnOnce() -> FeedbackSums) {
        if self.kept.push(self.keeps(a)).is_some() {
            self.sums.push(sums());
        }
    }

    /// The sums of the adoption at position `at`, if kept.
    #[inline]
    fn get(&self, at: usize) -> Option<&FeedbackSums> {
        self.sums.get(self.kept.rank(at)? as usize)
    }

    /// The sums of the adoption at position `at` to change, if kept.
    fn get_mut(&mut self, at: usize) -> Option<&mut FeedbackSums> {
        self.sums.get_mut(self.kept.rank(at)? as usize)
    }
}

/// The category priors already computed ([`AdoptionIndex::category_prior`]), behind a read-write
/// lock: recommendations share it (read), a missing variant is written once; a new feedback
/// record updates it through `&mut`, without locking. A clone of the index gets a copy, or an
/// empty cache if a reader is writing a variant at that moment: a writer never makes a reader
/// wait, even on this cache (the variants are computed again when asked).
#[derive(Debug, Default)]
struct PriorCache(RwLock<HashMap<PriorKey, PriorSums>>);

impl Clone for PriorCache {
    fn clone(&self) -> Self {
        let copy = match self.0.try_read() {
            Ok(priors) => priors.clone(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().clone(),
            Err(std::sync::TryLockError::WouldBlock) => HashMap::new(),
        };
        PriorCache(RwLock::new(copy))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PriorKey {
    category: Slug,
    incident_penalty: u64,
    downtime_penalty: u64,
    today: NaiveDate,
}

#[derive(Debug, Clone, Default)]
struct PriorSums {
    sum: f64,
    n: u64,
    /// The same per (product, generation or release as recorded).
    by_key: HashMap<(Slug, Option<GenerationId>), (f64, u64)>,
}

impl PriorSums {
    fn add(&mut self, a: &Adoption, q: f64) {
        self.sum += q;
        self.n += 1;
        let e = self.by_key.entry((a.product.clone(), a.generation.clone())).or_default();
        e.0 += q;
        e.1 += 1;
    }
}

/// A product and its generation or release as an adoption records them.
type RecordedKey = (Slug, Option<GenerationId>);

/// Per (product, generation or release as recorded) of one category, the positions of its
/// adoptions (each list shared between index versions until changed).
type KeyLists = BTreeMap<RecordedKey, Arc<KeyList>>;

/// The positions of one key's adoptions, in the order they were added, with the two dates that
/// tell, most of the time without reading them, whether one is in service on a date: a key whose
/// adoptions all ended long ago (an old generation with tens of thousands of them at national
/// scale) is known out of service in O(1).
#[derive(Debug, Default, Clone)]
struct KeyList {
    positions: Vec<u32>,
    /// The earliest start of the adoptions without an end.
    open_since: Option<NaiveDate>,
    /// The latest end of the adoptions with one.
    latest_end: Option<NaiveDate>,
}

impl KeyList {
    /// Takes `a`'s dates into the two bounds (an adoption added to the list).
    fn note(&mut self, a: &Adoption) {
        match a.until {
            None => self.open_since = Some(self.open_since.map_or(a.since, |s| s.min(a.since))),
            Some(u) => self.latest_end = Some(self.latest_end.map_or(u, |e| e.max(u))),
        }
    }

    /// Both bounds computed again from the adoptions (after one was replaced or moved away).
    fn bounds(&self, adoptions: &Chunks<Adoption, 14>) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let mut fresh = KeyList::default();
        self.positions.iter().for_each(|&i| fresh.note(&adoptions[i as usize]));
        (fresh.open_since, fresh.latest_end)
    }

    /// Whether one of the adoptions is in service on `date` (started by then and not ended): an
    /// adoption without an end started by then answers yes; when none did and no end is later
    /// than `date`, no; only otherwise are the adoptions read.
    fn in_service(&self, adoptions: &Chunks<Adoption, 14>, date: NaiveDate) -> bool {
        if self.open_since.is_some_and(|s| s <= date) {
            return true;
        }
        if self.latest_end.is_none_or(|e| e <= date) {
            return false;
        }
        self.positions.iter().any(|&i| adoptions[i as usize].active_on(date))
    }
}

/// Quality sums of the reports of a category: per (product, generation or release as
/// recorded), `(Σ q, n)`.
pub type QualitySums = HashMap<(Slug, Option<GenerationId>), (f64, u64)>;

/// The in-memory index of every adoption and feedback record (rebuilt from the store at start,
/// updated after each durable write), as the recommender, pooling and pages read them.
///
/// Layout (measured in `BENCHMARKS.md`): adoptions in insertion order in chunks of 16,384
/// ([`Chunks`]), each with its category, product and generation as shared text interned here
/// (one copy of each distinct slug, 8-byte handles in the records); an adoption found by id with
/// a binary search while ids came in order (`ById`); lists by category (in service or ended),
/// by category and key, and by category and commune (`CommuneLists`) hold `u32` positions into
/// them, not copies; each adoption's
/// feedback is a list of packed reports at the same position, the lists of 1,024 adoptions end
/// to end in one byte vector ([`PackedReports`]: about 6.4 bytes a record).
///
/// Versions: a clone shares every part with the original ([`Chunks`], [`ShardedMap`], `Arc`s);
/// a write applied to a clone copies only the parts it touches (a chunk of adoptions or of
/// feedback lists, a block of a category's lists by commune, one category's other lists, a
/// shard of the map by id when there is one). The service applies each
/// write to a clone and publishes it whole, so that a reader keeps the version it started with
/// and never waits for a writer (issue 17, item 4).
#[derive(Debug, Default, Clone)]
pub struct AdoptionIndex {
    adoptions: Chunks<Adoption, 14>,
    /// How an adoption's position is found from its id ([`ById`]).
    by_id: ById,
    /// The communes' numbers, by which their lists are found in `by_category_commune`.
    numbers: Arc<CommuneNumbers>,
    /// Per category (together, every adoption of the category): positions of the adoptions
    /// without an end (`until` unset), then of those with one ([`AdoptionIndex::in_category`]
    /// reads them in that order).
    open: FnvHashMap<Slug, Arc<Vec<u32>>>,
    closed: FnvHashMap<Slug, Arc<Vec<u32>>>,
    /// Per category and commune, the positions of the commune's adoptions in the category, in
    /// the order they were added or moved in: a reach reads its communes' adoptions in one category without
    /// going through their others.
    by_category_commune: FnvHashMap<Slug, Arc<CommuneLists>>,
    /// Per category, the positions of its adoptions per (product, generation or release as
    /// recorded): which candidates the category can offer at all.
    category_keys: FnvHashMap<Slug, Arc<KeyLists>>,
    /// Feedback per adoption, at the adoption's position, in id order.
    feedback: PackedReports,
    /// The comments of the feedback records that have one, by record id.
    comments: ShardedMap<Box<str>>,
    /// Per adoption, at its position: for an ended one, the earliest start of an adoption of
    /// the same product in the same commune and category that continues it (started on or
    /// after it, in service after its end); `None` when none does or it has no end. Kept by
    /// [`AdoptionIndex::add_adoption`] for the commune's adoptions in the category, so that
    /// [`AdoptionIndex::abandoned_by`] reads one date instead of the commune's adoptions.
    continued_from: Chunks<Option<NaiveDate>, 12>,
    /// The feedback sums for one basis of every adoption that can be scored on its date
    /// ([`KeptSums`]: the service keeps them for its date and the default parameters), kept up
    /// to date by every write; `None` until asked for.
    kept_sums: Option<KeptSums>,
    slugs: HashSet<Slug>,
    generations: HashSet<GenerationId>,
    n_feedback: usize,
    version: u64,
    /// Category priors already computed, kept up to date as feedback arrives (see
    /// [`AdoptionIndex::category_prior`]).
    priors: PriorCache,
}

/// How an [`AdoptionIndex`] finds an adoption's position from its id. While the adoptions came
/// in increasing id order (the store's order at a start, and every new one the largest: the
/// service gives ids and publishes under its writers' lock), positions follow ids and a binary
/// search over the adoptions finds one, with no map at all (the map took 12 bytes an adoption,
/// 11.9 MB at national scale). The first id out of order makes the map of every position by
/// id, used from then on: the same answers either way.
#[derive(Debug, Default, Clone)]
enum ById {
    /// Positions in increasing id order: found by a binary search.
    #[default]
    Ordered,
    /// Positions by id.
    Mapped(ShardedMap<u32>),
}

fn intern<T: Clone + Eq + std::hash::Hash>(set: &mut HashSet<T>, v: &mut T) {
    match set.get(v) {
        Some(known) => *v = known.clone(),
        None => {
            set.insert(v.clone());
        }
    }
}

impl AdoptionIndex {
    /// Adds (or replaces, same id) an adoption.
    pub fn add_adoption(&mut self, mut a: Adoption) {
        self.version += 1;
        intern(&mut self.slugs, &mut a.category);
        intern(&mut self.slugs, &mut a.product);
        if let Some(g) = a.generation.as_mut() {
            intern(&mut self.generations, g);
        }
        if let Some(i) = self.position_by_id(a.id) {
            // A replacement is re-indexed where it moved (the store only changes the end, the
            // contract end and the workstations, but the index does not rely on it).
            let old = &self.adoptions[i as usize];
            let (old_commune, old_category, was_open) = (old.commune, old.category.clone(), old.until.is_none());
            let old_key = (old.product.clone(), old.generation.clone());
            let old_dates = (old.since, old.until);
            let key_moved = old_category != a.category || old_key.0 != a.product || old_key.1 != a.generation;
            if key_moved {
                if let Some(v) = self.category_keys.get_mut(&old_category).and_then(|m| Arc::make_mut(m).get_mut(&old_key)) {
                    let v = Arc::make_mut(v);
                    v.positions.retain(|&j| j != i);
                    (v.open_since, v.latest_end) = v.bounds(&self.adoptions);
                }
                self.note_key(&a, i);
            }
            if old_commune != a.commune || old_category != a.category {
                if let (Some(m), Some(n)) = (self.by_category_commune.get_mut(&old_category), self.numbers.get(&old_commune)) {
                    Arc::make_mut(m).remove(n, i);
                }
                let n = self.commune_number(&a.commune);
                Arc::make_mut(self.by_category_commune.entry(a.category.clone()).or_default()).push(n, i);
            }
            if was_open != a.until.is_none() || old_category != a.category {
                let from = if was_open { &mut self.open } else { &mut self.closed };
                if let Some(v) = from.get_mut(&old_category) {
                    Arc::make_mut(v).retain(|&j| j != i);
                }
                let to = if a.until.is_none() { &mut self.open } else { &mut self.closed };
                Arc::make_mut(to.entry(a.category.clone()).or_default()).push(i);
            }
            let (commune, category) = (a.commune, a.category.clone());
            let (key, dates) = ((a.product.clone(), a.generation.clone()), (a.since, a.until));
            if let Some(slot) = self.adoptions.get_mut(i as usize) {
                *slot = a;
            }
            // Still in its key with other dates (an end recorded, say): the key's bounds are
            // computed again, the list copied from the older versions' only if they moved. (Moved
            // to another key, it was noted there as added, and its old key computed again.)
            let redo = !key_moved && dates != old_dates;
            let bounds =
                self.category_keys.get(&category).and_then(|m| m.get(&key)).filter(|_| redo).map(|v| (v.bounds(&self.adoptions), (v.open_since, v.latest_end)));
            if let Some((fresh, (open_since, latest_end))) = bounds
                && fresh != (open_since, latest_end)
                && let Some(v) = self.category_keys.get_mut(&category).and_then(|m| Arc::make_mut(m).get_mut(&key))
            {
                let v = Arc::make_mut(v);
                (v.open_since, v.latest_end) = fresh;
            }
            self.note_continuations(&commune, &category);
            if old_commune != commune || old_category != category {
                self.note_continuations(&old_commune, &old_category);
            }
            return;
        }
        let i = u32::try_from(self.adoptions.len()).expect("fewer than 2^32 adoptions");
        self.note_id(a.id, i);
        let n = self.commune_number(&a.commune);
        Arc::make_mut(self.by_category_commune.entry(a.category.clone()).or_default()).push(n, i);
        let list = if a.until.is_none() { &mut self.open } else { &mut self.closed };
        Arc::make_mut(list.entry(a.category.clone()).or_default()).push(i);
        self.note_key(&a, i);
        let (commune, category) = (a.commune, a.category.clone());
        self.adoptions.push(a);
        self.feedback.push_empty();
        self.continued_from.push(None);
        if let Some(k) = &mut self.kept_sums {
            k.push(&self.adoptions[i as usize], FeedbackSums::default);
        }
        self.note_continuations(&commune, &category);
    }

    /// The position of the adoption with id `id`, if the index holds it.
    fn position_by_id(&self, id: u64) -> Option<u32> {
        match &self.by_id {
            ById::Ordered => self.adoptions.search_sorted(&id, |a| a.id).map(|i| i as u32),
            ById::Mapped(m) => m.get(&id).copied(),
        }
    }

    /// Notes that the new adoption `id` goes at position `i` (the end, before it is pushed):
    /// nothing while ids come in increasing order; the map of every position by id from the
    /// first one that does not.
    fn note_id(&mut self, id: u64, i: u32) {
        match &mut self.by_id {
            ById::Ordered if self.adoptions.len().checked_sub(1).is_none_or(|k| self.adoptions[k].id < id) => {}
            ById::Ordered => {
                let mut m = ShardedMap::default();
                for (k, a) in self.adoptions.iter().enumerate() {
                    m.insert(a.id, u32::try_from(k).expect("fewer than 2^32 adoptions"));
                }
                m.insert(id, i);
                self.by_id = ById::Mapped(m);
            }
            ById::Mapped(m) => {
                m.insert(id, i);
            }
        }
    }

    /// Computes and from then on keeps the [`FeedbackSums`] of every adoption that can be scored
    /// on `basis`'s date (in service on it or after it, when computed or added) for `basis`
    /// (replacing those of another basis): O(feedback records) once, then O(1) per new record.
    /// Does nothing when they are already kept for it.
    pub fn keep_feedback_sums(&mut self, basis: SumsBasis) {
        if self.kept_sums_basis() != Some(basis) {
            let sums = self.feedback_sums(basis);
            self.install_feedback_sums(sums);
        }
    }

    /// Computes the [`FeedbackSums`] for `basis` of every adoption that can be scored on its date
    /// (in service on it or after it) without changing the index (readers go on meanwhile), for
    /// [`AdoptionIndex::install_feedback_sums`].
    pub fn feedback_sums(&self, basis: SumsBasis) -> FeedbackSumsTable {
        let mut sums = KeptSums::new(basis);
        for (a, records) in self.adoptions.iter().zip(self.feedback.iter()) {
            sums.push(a, || basis.sums(records));
        }
        sums.kept.shrink_to_fit();
        FeedbackSumsTable { version: self.version, sums }
    }

    /// Keeps sums computed by [`AdoptionIndex::feedback_sums`] from then on, if the index did not
    /// change since (returns whether they were taken; when not, compute them again).
    pub fn install_feedback_sums(&mut self, table: FeedbackSumsTable) -> bool {
        let fresh = table.version == self.version;
        if fresh {
            self.kept_sums = Some(table.sums);
        }
        fresh
    }

    /// The basis the feedback sums are kept for, if any.
    pub fn kept_sums_basis(&self) -> Option<SumsBasis> {
        self.kept_sums.as_ref().map(|k| k.basis)
    }

    /// The kept [`FeedbackSums`] of an adoption read from this index, when they are kept for
    /// `basis` and this adoption (in service on the basis's date or after it when the sums were
    /// computed or it was added; an ended one is read from its records);
    /// `None` otherwise (the caller reads the records: [`AdoptionIndex::reports_of`]).
    pub fn feedback_sums_of(&self, a: &Adoption, basis: &SumsBasis) -> Option<FeedbackSums> {
        self.feedback_sums_in(self.position_of(a), basis)
    }

    /// The kept sums of the adoption at position `at`, when kept for `basis`.
    #[inline]
    fn feedback_sums_in(&self, at: Option<usize>, basis: &SumsBasis) -> Option<FeedbackSums> {
        let k = self.kept_sums.as_ref().filter(|k| k.basis == *basis)?;
        k.get(at?).copied()
    }

    /// The number of feedback records on an adoption read from this index dated on or before
    /// `today`, and their mean reliability (1-5; 0 without records): from the kept sums when
    /// they are kept for a basis dated `today` (whatever its penalties and half-life, which
    /// these two figures do not depend on), else from the records. Both give the same values:
    /// the ratings are small integers, summed exactly.
    pub fn reliability_of(&self, a: &Adoption, today: NaiveDate) -> (u32, f64) {
        self.reliability_in(self.position_of(a), || self.ratings_of(a, today), today)
    }

    /// [`AdoptionIndex::reliability_of`] the adoption at position `at` (`None`: not one of this
    /// index's, its `ratings` read from the records).
    fn reliability_in(&self, at: Option<usize>, ratings: impl FnOnce() -> Ratings, today: NaiveDate) -> (u32, f64) {
        let kept = self.kept_sums.as_ref().filter(|k| k.basis.today == today).and_then(|k| k.get(at?));
        match kept {
            Some(s) if s.n > 0 => (s.n, f64::from(s.sum_reliability) / f64::from(s.n)),
            Some(_) => (0, 0.0),
            None => {
                let r = ratings();
                (r.n, r.mean_reliability)
            }
        }
    }

    /// Recomputes `continued_from` for the adoptions of `commune` in `category` (a handful:
    /// quadratic in their number).
    fn note_continuations(&mut self, commune: &InseeCode, category: &Slug) {
        let Some((m, n)) = self.by_category_commune.get(category).zip(self.numbers.get(commune)) else { return };
        let positions = m.get(n);
        let continued: SmallVec<[(u32, Option<NaiveDate>); 4]> = positions
            .iter()
            .map(|&i| {
                let a = &self.adoptions[i as usize];
                let from = a.until.and_then(|u| {
                    positions
                        .iter()
                        .map(|&j| &self.adoptions[j as usize])
                        .filter(|b| b.id != a.id && b.product == a.product && b.since >= a.since && b.until.is_none_or(|v| v > u))
                        .map(|b| b.since)
                        .min()
                });
                (i, from)
            })
            .collect();
        for (i, from) in continued {
            // Written only when it changes: an unchanged chunk stays shared with older versions.
            if self.continued_from[i as usize] != from
                && let Some(c) = self.continued_from.get_mut(i as usize)
            {
                *c = from;
            }
        }
    }

    fn note_key(&mut self, a: &Adoption, i: u32) {
        let keys = Arc::make_mut(self.category_keys.entry(a.category.clone()).or_default());
        let list = Arc::make_mut(keys.entry((a.product.clone(), a.generation.clone())).or_default());
        list.positions.push(i);
        list.note(a);
    }

    /// `code`'s number ([`CommuneNumbers`]), given if it has none (the table copied then, if
    /// another version shares it).
    fn commune_number(&mut self, code: &InseeCode) -> u32 {
        match self.numbers.get(code) {
            Some(n) => n,
            None => Arc::make_mut(&mut self.numbers).number(code),
        }
    }

    /// Adds a feedback record; returns false, ignoring it, if one with the same id is already
    /// there or if its adoption is unknown (the store only holds feedback on stored adoptions:
    /// add the adoptions first). Cached category priors that cover its date take it in.
    pub fn add_feedback(&mut self, f: Feedback) -> bool {
        let Some(i) = self.position_by_id(f.adoption_id) else { return false };
        let (r, comment) = (Report::from(&f), f.comment);
        // Kept in id order (the order of recording): a new record goes last.
        let Some((_, last)) = self.feedback.insert_by_id(i as usize, r) else { return false };
        self.took_feedback(i, r, comment, last);
        true
    }

    /// Adds a run of feedback records, as [`AdoptionIndex::add_feedback`] would one by one in
    /// the run's order, and returns how many it added; `run` is left empty (its capacity kept
    /// for the next run). A run of one adoption's records in increasing id order, all after
    /// those it has (what a bulk load reads: a snapshot, the store's groups, the demo history),
    /// is added at once: its adoption found once, its reports packed together (a bulk load of the
    /// national history added 4.2 million records one by one, each looking its adoption up and
    /// moving the ends of the lists after it). Any other run is added record by record.
    pub fn add_feedback_run(&mut self, run: &mut Vec<Feedback>) -> usize {
        let Some(first) = run.first() else { return 0 };
        let one_adoption = run.windows(2).all(|w| w[0].id < w[1].id && w[0].adoption_id == w[1].adoption_id);
        match one_adoption.then(|| self.position_by_id(first.adoption_id)).flatten() {
            Some(i) if self.feedback.append(i as usize, run.iter().map(Report::from)) => {
                let n = run.len();
                for f in run.drain(..) {
                    let r = Report::from(&f);
                    self.took_feedback(i, r, f.comment, true);
                }
                n
            }
            _ => run.drain(..).map(|f| self.add_feedback(f)).filter(|&added| added).count(),
        }
    }

    /// What a new report `f` of the adoption at position `i`, already in its list (the last one
    /// there when `last`), changes besides: the cached priors, the kept sums, the comment and
    /// the counts.
    fn took_feedback(&mut self, i: u32, f: Report, comment: Option<String>, last: bool) {
        let a = &self.adoptions[i as usize];
        {
            let priors = self.priors.0.get_mut().unwrap_or_else(|e| e.into_inner());
            for (k, p) in priors.iter_mut().filter(|(k, _)| k.category == a.category && f.date <= k.today) {
                p.add(a, quality_of(&f, f64::from_bits(k.incident_penalty), f64::from_bits(k.downtime_penalty)));
            }
        }
        if let Some(k) = &mut self.kept_sums {
            let basis = k.basis;
            if let Some(sums) = k.get_mut(i as usize) {
                if last {
                    sums.add(&basis, &f);
                } else {
                    // Out of id order (rare): the sums are made again in the records' order.
                    *sums = basis.sums(self.feedback.get(i as usize).unwrap_or(Reports::EMPTY));
                }
            }
        }
        if let Some(c) = comment {
            self.comments.insert(f.id, c.into_boxed_str());
        }
        self.n_feedback += 1;
        self.version += 1;
    }

    /// Gives back the spare capacity of the vectors (after a bulk load), and numbers the
    /// communes again in the order of their codes (`CommuneNumbers::in_code_order`).
    pub fn shrink_to_fit(&mut self) {
        self.adoptions.shrink_each(|_| ());
        self.feedback.shrink_to_fit();
        self.continued_from.shrink_each(|_| ());
        if let Some(k) = &mut self.kept_sums {
            k.sums.shrink_each(|_| ());
            k.kept.shrink_to_fit();
        }
        if let ById::Mapped(m) = &mut self.by_id {
            m.shrink_to_fit();
        }
        self.comments.shrink_to_fit();
        let (numbers, olds) = self.numbers.in_code_order();
        for lists in self.by_category_commune.values_mut() {
            // The lists in the new numbers' order, each appended whole at the end.
            let mut fresh = CommuneLists::default();
            for (new, &old) in (0u32..).zip(&olds) {
                lists.get(old).iter().for_each(|&p| fresh.push(new, p));
            }
            fresh.shrink_to_fit();
            *lists = Arc::new(fresh);
        }
        self.numbers = Arc::new(numbers);
        self.open.values_mut().for_each(|v| Arc::make_mut(v).shrink_to_fit());
        self.closed.values_mut().for_each(|v| Arc::make_mut(v).shrink_to_fit());
        for keys in self.category_keys.values_mut() {
            Arc::make_mut(keys).values_mut().for_each(|v| Arc::make_mut(v).positions.shrink_to_fit());
        }
    }

    /// The (product, generation or release as recorded) of the adoptions of `category`, in
    /// key order, each with whether one of its adoptions is in service on `date` (started by
    /// then and not ended).
    pub fn keys_in_category<'a>(&'a self, category: &Slug, date: NaiveDate) -> impl Iterator<Item = (&'a Slug, Option<&'a GenerationId>, bool)> + 'a {
        self.key_lists(category).map(move |((p, g), v)| (p, g.as_ref(), v.in_service(&self.adoptions, date)))
    }

    /// The (product, generation or release as recorded) of the adoptions of `category`, in key
    /// order, each with its adoptions (in service or not, in the order they were added): what a
    /// wide search reads for the few candidates it can propose, instead of every adoption of the
    /// category.
    pub fn adoptions_by_key<'a>(&'a self, category: &Slug) -> impl Iterator<Item = (&'a Slug, Option<&'a GenerationId>, KeyAdoptions<'a>)> + 'a {
        self.key_lists(category).map(move |((p, g), v)| (p, g.as_ref(), KeyAdoptions { index: self, positions: v.positions.as_slice() }))
    }

    /// The non-empty lists of `category`'s keys, in key order.
    fn key_lists<'a>(&'a self, category: &Slug) -> impl Iterator<Item = (&'a RecordedKey, &'a Arc<KeyList>)> + 'a {
        self.category_keys.get(category).into_iter().flat_map(|m| m.iter()).filter(|(_, v)| !v.positions.is_empty())
    }

    /// Number of changes applied so far (adoptions added or replaced, feedback added): an
    /// answer computed at one version is still right while the version has not moved.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Category prior: the mean quality ([`quality_of`]) of every feedback record of the
    /// category dated on or before `today`, 3.0 when there is none. Computed once per
    /// (category, penalties, date) and then kept up to date by [`AdoptionIndex::add_feedback`], so
    /// that a recommendation does not walk the whole category each time. At most 256 variants
    /// are kept (parameters come from requests): past that the cache starts again.
    pub fn category_prior(&self, category: &Slug, incident_penalty: f64, downtime_penalty: f64, today: NaiveDate) -> f64 {
        self.with_prior_sums(category, incident_penalty, downtime_penalty, today, |p| if p.n == 0 { 3.0 } else { p.sum / p.n as f64 })
    }

    /// The quality sums behind [`AdoptionIndex::category_prior`], per (product, generation or
    /// release as recorded): every report of the category dated up to `today`, anywhere.
    pub fn quality_sums(&self, category: &Slug, incident_penalty: f64, downtime_penalty: f64, today: NaiveDate) -> QualitySums {
        self.with_prior_sums(category, incident_penalty, downtime_penalty, today, |p| p.by_key.clone())
    }

    /// [`AdoptionIndex::quality_sums`] read in place by `read` (no copy of the map; the
    /// recommender's hot path), under the cache's lock: `read` must not call back into the
    /// index's priors.
    pub fn with_quality_sums<T>(
        &self,
        category: &Slug,
        incident_penalty: f64,
        downtime_penalty: f64,
        today: NaiveDate,
        read: impl FnOnce(&QualitySums) -> T,
    ) -> T {
        self.with_prior_sums(category, incident_penalty, downtime_penalty, today, |p| read(&p.by_key))
    }

    fn with_prior_sums<T>(&self, category: &Slug, incident_penalty: f64, downtime_penalty: f64, today: NaiveDate, read: impl FnOnce(&PriorSums) -> T) -> T {
        let key = PriorKey { category: category.clone(), incident_penalty: incident_penalty.to_bits(), downtime_penalty: downtime_penalty.to_bits(), today };
        if let Some(p) = self.priors.0.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return read(p);
        }
        let mut sums = PriorSums::default();
        for a in self.in_category(category) {
            for f in self.reports_of(a).iter().filter(|f| f.date <= today) {
                sums.add(a, quality_of(&f, incident_penalty, downtime_penalty));
            }
        }
        let out = read(&sums);
        let mut priors = self.priors.0.write().unwrap_or_else(|e| e.into_inner());
        if priors.len() >= 256 {
            priors.clear();
        }
        priors.insert(key, sums);
        out
    }

    /// An adoption by id.
    pub fn adoption(&self, id: u64) -> Option<&Adoption> {
        self.position_by_id(id).map(|i| &self.adoptions[i as usize])
    }

    /// All adoptions, in insertion order.
    pub fn adoptions(&self) -> impl Iterator<Item = &Adoption> + '_ {
        self.adoptions.iter()
    }

    /// Number of adoptions.
    pub fn adoption_count(&self) -> usize {
        self.adoptions.len()
    }

    /// A commune's adoptions, in the order they were added (oldest first).
    pub fn of_commune<'a>(&'a self, code: &InseeCode) -> impl Iterator<Item = &'a Adoption> + 'a {
        // Gathered from the lists of every category (about 20): no list of its own is kept
        // for what only the commune's page and a new adoption's duplicate check read.
        let mut positions: Vec<u32> = match self.numbers.get(code) {
            Some(n) => self.by_category_commune.values().flat_map(|m| m.get(n).iter().copied()).collect(),
            None => Vec::new(),
        };
        positions.sort_unstable();
        positions.into_iter().map(|i| &self.adoptions[i as usize])
    }

    /// A commune's adoptions in a category, in the order they came into the category's list for
    /// the commune: oldest first, an adoption moved there by a replacement (another commune or
    /// category; the service never moves one) last.
    pub fn of_commune_in<'a>(&'a self, code: &InseeCode, category: &Slug) -> impl Iterator<Item = &'a Adoption> + 'a {
        self.in_category_by_commune(category).of_commune(code)
    }

    /// The adoptions of one category, read commune by commune ([`CategoryByCommune::of_commune`]):
    /// the category is looked up once for many communes.
    pub fn in_category_by_commune<'a>(&'a self, category: &Slug) -> CategoryByCommune<'a> {
        CategoryByCommune { index: self, lists: self.by_category_commune.get(category).map(|m| &**m) }
    }

    /// All adoptions in a category: those without an end, then the ended ones.
    pub fn in_category<'a>(&'a self, category: &Slug) -> impl Iterator<Item = &'a Adoption> + 'a {
        self.in_category_placed(category).map(|p| p.adoption)
    }

    /// [`AdoptionIndex::in_category`], each adoption with its place in the index.
    pub fn in_category_placed<'a>(&'a self, category: &Slug) -> impl Iterator<Item = Placed<'a>> + 'a {
        let lists = [self.open.get(category), self.closed.get(category)];
        lists.into_iter().flatten().flat_map(|v| v.iter()).map(|&at| self.placed(at))
    }

    /// The adoption at position `at` (one this index gave), placed.
    fn placed(&self, at: u32) -> Placed<'_> {
        Placed { adoption: &self.adoptions[at as usize], at }
    }

    /// The place of an adoption in this index: its position when the adoption there is `p`'s
    /// (same address), else looked up by address ([`AdoptionIndex::position_of`]).
    fn place_of(&self, p: Placed) -> Option<usize> {
        let at = p.at as usize;
        if at < self.adoptions.len() && std::ptr::eq(&self.adoptions[at], p.adoption) { Some(at) } else { self.position_of(p.adoption) }
    }

    /// [`AdoptionIndex::feedback_sums_of`] of a placed adoption, read at its place.
    pub fn feedback_sums_at(&self, p: Placed, basis: &SumsBasis) -> Option<FeedbackSums> {
        self.feedback_sums_in(self.place_of(p), basis)
    }

    /// [`AdoptionIndex::reliability_of`] a placed adoption, read at its place.
    pub fn reliability_at(&self, p: Placed, today: NaiveDate) -> (u32, f64) {
        self.reliability_in(self.place_of(p), || self.ratings_at(p, today), today)
    }

    /// [`AdoptionIndex::ratings_of`] a placed adoption, read at its place.
    pub fn ratings_at(&self, p: Placed, date: NaiveDate) -> Ratings {
        Ratings::of(self.reports_at(p), date)
    }

    /// [`AdoptionIndex::reports_of`] of a placed adoption, read at its place.
    pub fn reports_at(&self, p: Placed) -> Reports<'_> {
        self.reports_in(self.place_of(p), p.id)
    }

    /// Number of adoptions in a category (all dates).
    pub fn category_len(&self, category: &Slug) -> usize {
        [&self.open, &self.closed].iter().filter_map(|m| m.get(category)).map(|v| v.len()).sum()
    }

    /// Whether an adoption ended on or before `date` by leaving the product: it has an `until`
    /// and no other adoption of the same product in the category, started on or after it (by
    /// `date`), is in service after that end. An upgrade to another generation or release of
    /// the same product, overlapping or not, is not an abandonment.
    pub fn abandoned_by(&self, a: &Adoption, date: NaiveDate) -> bool {
        self.abandoned_in(self.position_of(a), a, date)
    }

    /// [`AdoptionIndex::abandoned_by`] of a placed adoption, read at its place.
    pub fn abandoned_at(&self, p: Placed, date: NaiveDate) -> bool {
        self.abandoned_in(self.place_of(p), p.adoption, date)
    }

    /// [`AdoptionIndex::abandoned_by`] of `a`, at position `at` in this index (`None`: not one
    /// of its adoptions).
    fn abandoned_in(&self, at: Option<usize>, a: &Adoption, date: NaiveDate) -> bool {
        let Some(u) = a.until.filter(|u| *u <= date) else { return false };
        // Continued: another adoption of the same product in the category, started since this
        // one (by `date`) and still in service after this one's end. An upgrade that starts
        // before the previous generation ends (2022 from 2024-01-15, 2016 until 2024-03-01)
        // continues the product. Read from `continued_from` (the earliest such start) for an
        // adoption of this index, from the commune's adoptions for any other.
        let continued = match at {
            Some(i) => self.continued_from[i].is_some_and(|c| c <= date),
            None => self
                .of_commune_in(&a.commune, &a.category)
                .any(|b| b.id != a.id && b.product == a.product && b.since >= a.since && b.since <= date && b.until.is_none_or(|v| v > u)),
        };
        !continued
    }

    /// A commune's adoptions in a category that are in service on `date`.
    pub fn active<'a>(&'a self, code: &InseeCode, category: &'a Slug, date: NaiveDate) -> impl Iterator<Item = &'a Adoption> + 'a {
        self.of_commune_in(code, category).filter(move |a| a.active_on(date))
    }

    /// Feedback on an adoption as whole records (with their adoption id and comment), in id
    /// order (the order it was recorded in): for the API and exports, built from the
    /// [`Report`]s ([`AdoptionIndex::reports`] is what the scoring reads).
    pub fn feedback(&self, adoption_id: u64) -> Vec<Feedback> {
        self.reports(adoption_id).iter().map(|r| r.to_feedback(adoption_id, self.comments.get(&r.id).map(|c| &**c))).collect()
    }

    /// The feedback on an adoption as the index keeps it, in id order.
    pub fn reports(&self, adoption_id: u64) -> Reports<'_> {
        self.position_by_id(adoption_id).and_then(|i| self.feedback.get(i as usize)).unwrap_or(Reports::EMPTY)
    }

    /// [`AdoptionIndex::reports`] of an adoption read from this index (found by its place in
    /// memory, without the lookup by id: the hot path's way); by id for any other.
    pub fn reports_of(&self, a: &Adoption) -> Reports<'_> {
        self.reports_in(self.position_of(a), a.id)
    }

    /// The reports of the adoption at position `at`, or (`None`: not one of this index's) of
    /// adoption `id`.
    fn reports_in(&self, at: Option<usize>, id: u64) -> Reports<'_> {
        match at {
            Some(i) => self.feedback.get(i).unwrap_or(Reports::EMPTY),
            None => self.reports(id),
        }
    }

    /// The position of an adoption read from this index (its place in memory, checked by id),
    /// `None` for any other.
    fn position_of(&self, a: &Adoption) -> Option<usize> {
        self.adoptions.position_of(a).filter(|&i| self.adoptions[i].id == a.id)
    }

    /// [`AdoptionIndex::ratings`] of an adoption read from this index (see
    /// [`AdoptionIndex::reports_of`]).
    pub fn ratings_of(&self, a: &Adoption, date: NaiveDate) -> Ratings {
        Ratings::of(self.reports_of(a), date)
    }

    /// Number of feedback records.
    pub fn feedback_count(&self) -> usize {
        self.n_feedback
    }

    /// Summary of the feedback on an adoption given on or before `date`.
    pub fn ratings(&self, adoption_id: u64, date: NaiveDate) -> Ratings {
        Ratings::of(self.reports(adoption_id), date)
    }
}

/// The adoptions of one (product, generation or release as recorded) of a category
/// ([`AdoptionIndex::adoptions_by_key`]).
#[derive(Clone, Copy)]
pub struct KeyAdoptions<'a> {
    index: &'a AdoptionIndex,
    positions: &'a [u32],
}

impl<'a> KeyAdoptions<'a> {
    /// How many adoptions the key has (in service or not).
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the key has no adoption.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The adoptions, in the order they were added, each with its place in the index.
    pub fn iter(self) -> impl Iterator<Item = Placed<'a>> + 'a {
        self.positions.iter().map(move |&at| self.index.placed(at))
    }
}

/// An adoption read from an [`AdoptionIndex`] with its place there, so that its feedback is
/// read there directly ([`AdoptionIndex::feedback_sums_at`], [`AdoptionIndex::reports_at`]),
/// not looked up by address ([`AdoptionIndex::reports_of`]). Reads as the adoption itself
/// (`Deref`). The place is trusted only where the adoption at it is this very one (same
/// address: the index that gave it, or a clone sharing its chunk); any other index looks the
/// adoption up by address, then by id, as for a plain `&Adoption`.
#[derive(Clone, Copy, Debug)]
pub struct Placed<'a> {
    /// The adoption.
    pub adoption: &'a Adoption,
    /// Its position in the index.
    at: u32,
}

impl std::ops::Deref for Placed<'_> {
    type Target = Adoption;
    fn deref(&self) -> &Adoption {
        self.adoption
    }
}

/// The communes that have (or had) an adoption in an index, numbered densely in the order they
/// first came, found by their code's slot ([`InseeCode::slot`]) without hashing: 4 bytes a slot
/// up to the highest in use (408 KB at national scale), one table for every category's
/// [`CommuneLists`] and shared by every version of the index (copied only when a commune
/// appears).
#[derive(Debug, Default, Clone)]
struct CommuneNumbers {
    /// The number of each slot's commune, `u32::MAX` for none.
    by_slot: Vec<u32>,
    count: u32,
}

impl CommuneNumbers {
    /// `code`'s number, if it has one.
    fn get(&self, code: &InseeCode) -> Option<u32> {
        self.by_slot.get(code.slot()).copied().filter(|&n| n != u32::MAX)
    }

    /// The same communes numbered in the order of their codes' slots, with, at each new
    /// number, the old one: a reach's communes (close codes, mostly) then have close numbers,
    /// and their lists sit together in a block.
    fn in_code_order(&self) -> (CommuneNumbers, Vec<u32>) {
        let mut fresh = CommuneNumbers { by_slot: vec![u32::MAX; self.by_slot.len()], count: 0 };
        let mut olds = Vec::with_capacity(self.count as usize);
        for (slot, &old) in self.by_slot.iter().enumerate().filter(|(_, n)| **n != u32::MAX) {
            fresh.by_slot[slot] = fresh.count;
            fresh.count += 1;
            olds.push(old);
        }
        (fresh, olds)
    }

    /// `code`'s number, given the next one if it has none.
    fn number(&mut self, code: &InseeCode) -> u32 {
        let slot = code.slot();
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, u32::MAX);
        }
        if self.by_slot[slot] == u32::MAX {
            self.by_slot[slot] = self.count;
            self.count = self.count.checked_add(1).filter(|&c| c != u32::MAX).expect("fewer than 2^32 - 1 communes");
        }
        self.by_slot[slot]
    }
}

/// Communes per [`ListBlock`].
const LIST_BLOCK: usize = 256;

/// Per commune, the positions of its adoptions in one category, by the commune's number
/// ([`CommuneNumbers`]): the lists of 256 consecutive numbers sit end to end in one block, each
/// block behind an [`Arc`] so that a write copies the one it changes (about 2.5 KB), not the
/// category. A list costs 4 bytes beside its positions (16 to 24 in the per-commune small
/// vectors before, plus 4 a slot in a table per category: about 25 MB at national scale;
/// `BENCHMARKS.md` has what they take now).
#[derive(Debug, Default, Clone)]
struct CommuneLists {
    blocks: Vec<Arc<ListBlock>>,
}

/// The lists of [`LIST_BLOCK`] consecutive commune numbers: the list of the `j`-th is
/// `positions[ends[j - 1]..ends[j]]` (from 0 for the first); `ends` stops at the last one that was given
/// a list (past it, every list is empty; a list emptied since stays, empty).
#[derive(Debug, Default, Clone)]
struct ListBlock {
    ends: Vec<u32>,
    positions: Vec<u32>,
}

impl ListBlock {
    fn range(&self, j: usize) -> std::ops::Range<usize> {
        match self.ends.get(j) {
            Some(&end) => (if j == 0 { 0 } else { self.ends[j - 1] as usize })..end as usize,
            None => 0..0,
        }
    }

    fn push(&mut self, j: usize, position: u32) {
        if self.ends.len() <= j {
            let total = u32::try_from(self.positions.len()).expect("fewer than 2^32 adoptions");
            self.ends.resize(j + 1, total);
        }
        self.positions.insert(self.ends[j] as usize, position);
        self.ends[j..].iter_mut().for_each(|e| *e += 1);
    }

    fn remove(&mut self, j: usize, position: u32) {
        let r = self.range(j);
        if let Some(k) = self.positions[r.clone()].iter().position(|&p| p == position) {
            self.positions.remove(r.start + k);
            self.ends[j..].iter_mut().for_each(|e| *e -= 1);
        }
    }
}

impl CommuneLists {
    /// Gives back the spare capacity (after a bulk load).
    fn shrink_to_fit(&mut self) {
        self.blocks.shrink_to_fit();
        for b in &mut self.blocks {
            let b = Arc::make_mut(b);
            b.ends.shrink_to_fit();
            b.positions.shrink_to_fit();
        }
    }

    /// Asks for the bounds of commune number `n`'s list ahead of [`CommuneLists::get`]
    /// ([`prefetch`]).
    #[inline]
    fn prefetch_bounds(&self, n: u32) {
        let (b, j) = (n as usize / LIST_BLOCK, n as usize % LIST_BLOCK);
        if let Some(end) = self.blocks.get(b).and_then(|b| b.ends.get(j)) {
            prefetch(end);
        }
    }

    /// The positions of the adoptions of commune number `n`, in the order they were added
    /// (empty when it has none here).
    fn get(&self, n: u32) -> &[u32] {
        let (b, j) = (n as usize / LIST_BLOCK, n as usize % LIST_BLOCK);
        self.blocks.get(b).map_or(&[], |b| &b.positions[b.range(j)])
    }

    /// Adds `position` at the end of commune number `n`'s list.
    fn push(&mut self, n: u32, position: u32) {
        let (b, j) = (n as usize / LIST_BLOCK, n as usize % LIST_BLOCK);
        if self.blocks.len() <= b {
            self.blocks.resize_with(b + 1, Arc::default);
        }
        Arc::make_mut(&mut self.blocks[b]).push(j, position);
    }

    /// Takes `position` out of commune number `n`'s list, if there (its block copied only then).
    fn remove(&mut self, n: u32, position: u32) {
        if self.get(n).contains(&position) {
            let (b, j) = (n as usize / LIST_BLOCK, n as usize % LIST_BLOCK);
            Arc::make_mut(&mut self.blocks[b]).remove(j, position);
        }
    }
}

/// The adoptions of one category of an [`AdoptionIndex`], by commune.
#[derive(Clone, Copy)]
pub struct CategoryByCommune<'a> {
    index: &'a AdoptionIndex,
    lists: Option<&'a CommuneLists>,
}

impl<'a> CategoryByCommune<'a> {
    /// A commune's adoptions in the category, oldest first.
    pub fn of_commune(self, code: &InseeCode) -> impl Iterator<Item = &'a Adoption> + 'a {
        self.of_commune_placed(code).map(|p| p.adoption)
    }

    /// [`CategoryByCommune::of_commune`], each adoption with its place in the index.
    pub fn of_commune_placed(self, code: &InseeCode) -> impl Iterator<Item = Placed<'a>> + 'a {
        let positions = self.lists.zip(self.index.numbers.get(code)).map_or(&[][..], |(m, n)| m.get(n));
        positions.iter().map(move |&at| self.index.placed(at))
    }

    /// The adoptions in the category of several communes at once, started by `started_by`
    /// (`since` on or before it), each with the position `k` of its commune in `codes`: commune
    /// by commune in `codes` order, each commune's oldest first (the order of
    /// [`CategoryByCommune::of_commune_placed`] over `codes`), appended to `out`.
    ///
    /// Read in passes (the communes' numbers, the bounds of their lists, their lists, then the
    /// adoptions, then their kept sums asked for) so that the memory reads of one pass do not
    /// wait on each other: a reach's communes and adoptions sit far apart in memory, and one
    /// after the other each read would wait for the previous one.
    pub fn gather_placed<'c>(self, codes: impl IntoIterator<Item = &'c InseeCode>, started_by: NaiveDate, out: &mut Vec<(u32, Placed<'a>)>) {
        let Some(lists) = self.lists else { return };
        let numbers: Vec<u32> = codes.into_iter().map(|c| self.index.numbers.get(c).unwrap_or(u32::MAX)).collect();
        for &n in &numbers {
            lists.prefetch_bounds(n);
        }
        let found: Vec<(u32, &[u32])> = numbers
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != u32::MAX)
            .map(|(k, &n)| (k as u32, lists.get(n)))
            .filter(|(_, list)| !list.is_empty())
            .inspect(|(_, list)| prefetch(&list[0]))
            .collect();
        let from = out.len();
        for (k, list) in found {
            out.extend(list.iter().map(|&at| (k, self.index.placed(at))));
        }
        let mut kept = from;
        for i in from..out.len() {
            if out[i].1.since <= started_by {
                out[kept] = out[i];
                kept += 1;
            }
        }
        out.truncate(kept);
        // Their kept sums, which the scoring reads next, asked for now: one pass whose reads
        // overlap, rather than one wait per adopter while it is scored.
        if let Some(sums) = &self.index.kept_sums {
            for (_, p) in &out[from..] {
                if let Some(s) = sums.get(p.at as usize) {
                    prefetch(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adoption_in_memory_takes_64_bytes() {
        // What the national index holds a million of (BENCHMARKS.md, memory layout): slugs and
        // generation ids behind thin pointers, dates with a niche for `None`.
        assert_eq!(std::mem::size_of::<Slug>(), 8);
        assert_eq!(std::mem::size_of::<Option<GenerationId>>(), 8);
        assert_eq!(std::mem::size_of::<Adoption>(), 64);
    }

    fn adoption(id: u64, commune: &str, product: &str) -> Adoption {
        Adoption {
            id,
            commune: InseeCode::parse(commune).unwrap(),
            category: Slug::parse("copieur").unwrap(),
            product: Slug::parse(product).unwrap(),
            generation: Some(GenerationId::parse("2024").unwrap()),
            since: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            until: None,
            contract_end: None,
            workstations: None,
            simulated: true,
        }
    }

    fn feedback(id: u64, adoption_id: u64, reliability: u8) -> Feedback {
        Feedback {
            id,
            adoption_id,
            date: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
            reliability,
            incidents: 0,
            downtime_hours: 0.0,
            support: 4,
            comment: None,
            simulated: true,
        }
    }

    #[test]
    fn adoptions_are_found_by_id_without_a_map_while_ids_come_in_order_and_with_one_after() {
        let mut h = AdoptionIndex::default();
        // More than one chunk of 16,384, so that the search crosses chunks.
        for id in (1..=40_000u64).map(|k| k * 3) {
            h.add_adoption(adoption(id, "29232", "a"));
        }
        assert!(matches!(h.by_id, ById::Ordered));
        assert_eq!(h.position_by_id(3), Some(0));
        assert_eq!(h.position_by_id(16_385 * 3), Some(16_384));
        assert_eq!(h.position_by_id(120_000), Some(39_999));
        assert_eq!(h.position_by_id(4), None);
        assert_eq!(h.position_by_id(0), None);
        assert_eq!(h.position_by_id(120_003), None);
        assert!(h.add_feedback(feedback(200_000, 16_385 * 3, 4)));
        assert_eq!(h.reports(16_385 * 3).len(), 1);
        // A replacement keeps its place and the order.
        let mut moved = adoption(9, "29019", "b");
        moved.until = NaiveDate::from_ymd_opt(2023, 1, 1);
        h.add_adoption(moved);
        assert!(matches!(h.by_id, ById::Ordered));
        assert_eq!(h.adoption(9).map(|a| a.product.as_str()), Some("b"));
        // An id smaller than the last: the map is made, every adoption still found.
        h.add_adoption(adoption(4, "29232", "c"));
        assert!(matches!(h.by_id, ById::Mapped(_)));
        assert_eq!(h.position_by_id(4), Some(40_000));
        assert_eq!(h.position_by_id(16_385 * 3), Some(16_384));
        assert_eq!(h.adoption(9).map(|a| a.product.as_str()), Some("b"));
        assert_eq!(h.adoption(5), None);
        assert!(h.add_feedback(feedback(200_001, 4, 2)));
        assert_eq!(h.reports(4).len(), 1);
        assert!(!h.add_feedback(feedback(200_002, 5, 2)));
    }

    #[test]
    fn abandonment_is_read_from_the_kept_continuation_and_follows_replacements() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // A copy of each adoption (not read from the index) takes the commune-by-commune way.
        let both = |h: &AdoptionIndex, id: u64, date: &str| {
            let a = h.adoption(id).unwrap();
            let (kept, scanned) = (h.abandoned_by(a, d(date)), h.abandoned_by(&a.clone(), d(date)));
            assert_eq!(kept, scanned, "adoption {id} on {date}");
            kept
        };
        let mut h = AdoptionIndex::default();
        // 1: product a, 2020 to 2024-03-01; 2: a again from 2024-01-15 (overlapping upgrade);
        // 3: product b from 2019, ended 2022-06-01, never continued; 4: b from 2023 (a return,
        // started after 3), in another commune: not a continuation of 3.
        let mut a1 = adoption(1, "29019", "copieur-a");
        a1.until = Some(d("2024-03-01"));
        h.add_adoption(a1);
        let mut b3 = adoption(3, "29019", "copieur-b");
        b3.since = d("2019-01-01");
        b3.until = Some(d("2022-06-01"));
        h.add_adoption(b3);
        let mut b4 = adoption(4, "29232", "copieur-b");
        b4.since = d("2023-01-01");
        h.add_adoption(b4.clone());
        assert!(both(&h, 1, "2024-06-01"), "ended, nothing continues it yet");
        assert!(!both(&h, 1, "2024-02-01"), "not ended on that date");
        let mut a2 = adoption(2, "29019", "copieur-a");
        a2.since = d("2024-01-15");
        h.add_adoption(a2.clone());
        assert!(!both(&h, 1, "2024-06-01"), "continued by 2 (started 2024-01-15)");
        assert!(both(&h, 3, "2026-01-01"));
        // Moving 4 into 3's commune continues 3 from 2023-01-01 (after 3's end); moving it back
        // ends that.
        b4.commune = InseeCode::parse("29019").unwrap();
        h.add_adoption(b4.clone());
        assert!(!both(&h, 3, "2026-01-01"));
        assert!(both(&h, 3, "2022-12-31"), "the continuation had not started on that date");
        b4.commune = InseeCode::parse("29232").unwrap();
        h.add_adoption(b4);
        assert!(both(&h, 3, "2026-01-01"));
        // Ending 2 before 1's end: it no longer continues 1.
        a2.until = Some(d("2024-02-01"));
        h.add_adoption(a2);
        assert!(both(&h, 1, "2024-06-01"));
        assert!(both(&h, 2, "2024-06-01"));
    }

    #[test]
    fn feedback_added_in_runs_gives_the_index_added_record_by_record() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let basis = SumsBasis::new(d("2026-11-29"), 0.5, 0.1, 24.0);
        let record = |id: u64, adoption_id: u64, date: &str, reliability: u8, comment: Option<&str>| Feedback {
            date: d(date),
            comment: comment.map(str::to_string),
            ..feedback(id, adoption_id, reliability)
        };
        let copieur = Slug::parse("copieur").unwrap();
        let today = d("2026-11-29");
        let (mut runs, mut one_by_one) = (AdoptionIndex::default(), AdoptionIndex::default());
        for h in [&mut runs, &mut one_by_one] {
            h.add_adoption(adoption(1, "29019", "copieur-a"));
            h.add_adoption(adoption(2, "29232", "copieur-a"));
            h.add_feedback(record(5, 1, "2025-01-10", 4, None));
            h.keep_feedback_sums(basis);
            // A prior cached before the runs takes their records in.
            h.category_prior(&copieur, 0.5, 0.1, today);
        }
        let batches = vec![
            // One adoption, ids increasing, after the record it has: added at once.
            vec![record(6, 1, "2025-06-01", 2, Some("lent")), record(7, 1, "2026-02-01", 5, None)],
            vec![record(8, 2, "2026-11-30", 3, None)],
            // Not one adoption's run, or not after what it has, or a repeated id, or an unknown
            // adoption: record by record, as many added as `add_feedback` adds.
            vec![record(9, 1, "2026-03-01", 1, None), record(10, 2, "2026-03-01", 4, None)],
            vec![record(4, 1, "2024-03-01", 3, None), record(11, 1, "2026-04-01", 3, None)],
            vec![record(7, 1, "2026-02-01", 5, None)],
            vec![record(12, 3, "2026-02-01", 5, None)],
            vec![],
        ];
        let mut added = Vec::new();
        for run in batches {
            let mut taken = run.clone();
            added.push(runs.add_feedback_run(&mut taken));
            assert!(taken.is_empty(), "the run is taken whole");
            for f in run {
                one_by_one.add_feedback(f);
            }
        }
        assert_eq!(added, [2, 1, 2, 2, 0, 0, 0]);
        assert_eq!((runs.feedback_count(), one_by_one.feedback_count()), (8, 8));
        for id in [1, 2] {
            assert_eq!(runs.feedback(id), one_by_one.feedback(id), "adoption {id}");
            let (a, b) = (runs.adoption(id).unwrap(), one_by_one.adoption(id).unwrap());
            assert_eq!(runs.feedback_sums_of(a, &basis), one_by_one.feedback_sums_of(b, &basis), "adoption {id}");
        }
        assert_eq!(runs.feedback(1).iter().map(|f| f.id).collect::<Vec<_>>(), [4, 5, 6, 7, 9, 11]);
        assert_eq!(runs.feedback(1)[2].comment.as_deref(), Some("lent"));
        assert_eq!(runs.quality_sums(&copieur, 0.5, 0.1, today), one_by_one.quality_sums(&copieur, 0.5, 0.1, today));
        assert_eq!(runs.version(), one_by_one.version());
    }

    #[test]
    fn kept_feedback_sums_follow_every_write_and_equal_sums_made_afresh() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let basis = SumsBasis::new(d("2026-11-29"), 0.5, 0.1, 24.0);
        let record = |id: u64, adoption_id: u64, date: &str, reliability: u8, incidents: u32| Feedback {
            date: d(date),
            incidents,
            ..feedback(id, adoption_id, reliability)
        };
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(1, "29019", "copieur-a"));
        h.add_feedback(record(10, 1, "2025-11-30", 4, 0));
        h.keep_feedback_sums(basis);
        // Appended, out of id order, dated after the basis (not counted), on a new adoption.
        h.add_feedback(record(12, 1, "2026-06-15", 2, 3));
        h.add_feedback(record(11, 1, "2024-01-31", 5, 0));
        h.add_feedback(record(13, 1, "2026-12-01", 1, 0));
        h.add_adoption(adoption(2, "29232", "copieur-a"));
        h.add_feedback(record(14, 2, "2026-11-29", 3, 1));
        // A replacement of the adoption (moved, given an end after the basis date: still kept
        // when computed afresh) keeps its records and their sums.
        let mut moved = adoption(1, "35238", "copieur-a");
        moved.until = Some(d("2027-10-01"));
        h.add_adoption(moved);
        let mut afresh = AdoptionIndex::default();
        for id in [1, 2] {
            afresh.add_adoption(h.adoption(id).unwrap().clone());
        }
        for id in [1, 2] {
            for f in h.feedback(id) {
                afresh.add_feedback(f.clone());
            }
        }
        afresh.keep_feedback_sums(basis);
        for id in [1, 2] {
            let (kept, made) =
                (h.feedback_sums_of(h.adoption(id).unwrap(), &basis).unwrap(), afresh.feedback_sums_of(afresh.adoption(id).unwrap(), &basis).unwrap());
            assert_eq!(kept, made, "adoption {id}");
        }
        let one = h.feedback_sums_of(h.adoption(1).unwrap(), &basis).unwrap();
        // 12, 10 and 11 (13 is after the basis date): ages 5, 11 (30 Nov to 29 Nov) and 33 months.
        assert_eq!(one.n, 3);
        let r = |age: f64| 0.5f64.powf(age / 24.0);
        assert!((one.sum_r - (r(5.0) + r(11.0) + r(33.0))).abs() < 1e-12, "{one:?}");
        let q12 = 2.0 - 0.5 * 4f64.ln();
        assert!((one.sum_q - (4.0 + 5.0 + 1f64.max(q12))).abs() < 1e-12, "{one:?}");
        assert_eq!(one.sum_reliability, 4 + 5 + 2);
        // Another basis: not served. Sums of the next day computed apart are refused when a
        // write came in between, and taken otherwise.
        let next_day = SumsBasis::new(d("2026-11-30"), 0.5, 0.1, 24.0);
        assert_eq!(h.feedback_sums_of(h.adoption(1).unwrap(), &next_day), None);
        let table = h.feedback_sums(next_day);
        h.add_feedback(record(15, 2, "2026-11-30", 5, 0));
        assert!(!h.install_feedback_sums(table));
        assert_eq!(h.kept_sums_basis(), Some(basis));
        let table = h.feedback_sums(next_day);
        assert!(h.install_feedback_sums(table));
        assert_eq!(h.feedback_sums_of(h.adoption(2).unwrap(), &next_day).map(|s| (s.n, s.sum_reliability)), Some((2, 8)));
        assert_eq!(h.feedback_sums_of(h.adoption(2).unwrap(), &basis), None);
        // An adoption not read from the index (a copy): not served either.
        assert_eq!(h.feedback_sums_of(&h.adoption(1).unwrap().clone(), &next_day), None);
        // Read with their place: the same sums and records, in this index; an index that did
        // not give the place (another one, its adoptions elsewhere) looks the adoption up by
        // address, and serves no sums for an adoption it does not hold.
        let copieur = Slug::parse("copieur").unwrap();
        let placed: Vec<Placed> = h.in_category_placed(&copieur).collect();
        assert_eq!(placed.iter().map(|p| p.id).collect::<Vec<_>>(), vec![2, 1], "open first, then ended");
        for p in &placed {
            assert_eq!(h.feedback_sums_at(*p, &next_day), h.feedback_sums_of(p.adoption, &next_day));
            assert_eq!(h.reports_at(*p).to_vec(), h.reports_of(p.adoption).to_vec());
            assert_eq!(afresh.feedback_sums_at(*p, &basis), None, "adoption {}", p.id);
            assert_eq!(afresh.reports_at(*p).to_vec(), afresh.reports_of(afresh.adoption(p.id).unwrap()).to_vec());
        }
        let by_commune: Vec<u64> = h.in_category_by_commune(&copieur).of_commune_placed(&InseeCode::parse("29232").unwrap()).map(|p| p.id).collect();
        assert_eq!(by_commune, vec![2]);
    }

    #[test]
    fn several_communes_gathered_at_once_give_each_communes_list_in_turn() {
        let mut h = AdoptionIndex::default();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let adds = [(1, "29232", "a", 2019), (2, "35238", "b", 2020), (3, "29232", "b", 2024), (4, "2A004", "a", 2021), (5, "35238", "c", 2027)];
        for (id, commune, product, year) in adds {
            h.add_adoption(Adoption { since: day(year, 3, 1), ..adoption(id, commune, product) });
        }
        h.add_adoption(Adoption { category: Slug::parse("site-web").unwrap(), ..adoption(6, "29232", "d") });
        let copieur = Slug::parse("copieur").unwrap();
        let codes: Vec<InseeCode> = ["35238", "01001", "29232", "2a004"].iter().map(|c| InseeCode::parse(c).unwrap()).collect();
        let mut out = Vec::new();
        h.in_category_by_commune(&copieur).gather_placed(codes.iter(), day(2026, 11, 29), &mut out);
        // Commune by commune in the order asked (01001 has none), each oldest first; 5 starts
        // after the date, 6 is of another category.
        let got: Vec<(u32, u64)> = out.iter().map(|(k, p)| (*k, p.id)).collect();
        assert_eq!(got, vec![(0, 2), (2, 1), (2, 3), (3, 4)]);
        // The same as reading the communes one by one, with their places.
        let one_by_one: Vec<(u32, u64, u32)> = codes
            .iter()
            .enumerate()
            .flat_map(|(k, c)| {
                h.in_category_by_commune(&copieur).of_commune_placed(c).filter(|p| p.since <= day(2026, 11, 29)).map(move |p| (k as u32, p.id, p.at))
            })
            .collect();
        assert_eq!(out.iter().map(|(k, p)| (*k, p.id, p.at)).collect::<Vec<_>>(), one_by_one);
        // Appended: what `out` held stays; a category with no list adds nothing.
        h.in_category_by_commune(&Slug::parse("paie-rh").unwrap()).gather_placed(codes.iter(), day(2026, 11, 29), &mut out);
        h.in_category_by_commune(&copieur).gather_placed(codes[..1].iter(), day(2027, 3, 1), &mut out);
        assert_eq!(out.iter().map(|(k, p)| (*k, p.id)).collect::<Vec<_>>(), vec![(0, 2), (2, 1), (2, 3), (3, 4), (0, 2), (0, 5)]);
        // With kept sums (their lines asked for as the adoptions are gathered): the same.
        h.keep_feedback_sums(SumsBasis::new(day(2026, 11, 29), 0.0, 0.0, 24.0));
        let mut kept = Vec::new();
        h.in_category_by_commune(&copieur).gather_placed(codes.iter(), day(2026, 11, 29), &mut kept);
        assert_eq!(kept.iter().map(|(k, p)| (*k, p.id, p.at)).collect::<Vec<_>>(), one_by_one);
    }

    #[test]
    fn every_code_has_its_own_slot_and_number_and_each_list_keeps_to_its_commune() {
        let code = |s: &str| InseeCode::parse(s).unwrap();
        let slots: Vec<usize> = ["01001", "29019", "35238", "97617", "2A004", "2B033", "2a004"].iter().map(|c| code(c).slot()).collect();
        assert_eq!(slots, [1_001, 29_019, 35_238, 97_617, 100_004, 101_033, 100_004]);
        assert_eq!(code("00000").slot(), 0);
        assert_eq!(code("99999").slot(), 99_999);
        assert_eq!(code("2B999").slot(), 101_999);
        // Numbers in the order communes come, whatever their slots.
        let mut numbers = CommuneNumbers::default();
        assert_eq!(
            [numbers.number(&code("35238")), numbers.number(&code("2B033")), numbers.number(&code("29019")), numbers.number(&code("35238"))],
            [0, 1, 2, 0]
        );
        assert_eq!((numbers.get(&code("2b033")), numbers.get(&code("29020")), numbers.get(&code("97617"))), (Some(1), None, None));
        assert_eq!(numbers.by_slot.len(), 101_034);
        let (fresh, olds) = numbers.in_code_order();
        assert_eq!(
            [fresh.get(&code("29019")), fresh.get(&code("35238")), fresh.get(&code("2B033")), fresh.get(&code("97617"))],
            [Some(0), Some(1), Some(2), None]
        );
        assert_eq!((olds, fresh.count), (vec![2, 0, 1], 3));
        // Lists across blocks of 256 numbers, pushed in any order of communes.
        let mut lists = CommuneLists::default();
        for (n, p) in [(0, 1), (300, 2), (2, 3), (0, 4), (255, 5), (256, 6), (0, 7), (2, 8)] {
            lists.push(n, p);
        }
        assert_eq!(lists.blocks.len(), 2);
        assert_eq!([lists.get(0), lists.get(1), lists.get(2), lists.get(255)], [&[1, 4, 7][..], &[], &[3, 8], &[5]]);
        assert_eq!([lists.get(256), lists.get(299), lists.get(300), lists.get(301), lists.get(9_999)], [&[6][..], &[], &[2], &[], &[]]);
        assert_eq!(lists.blocks[0].ends.len(), 256, "up to the last commune with a list");
        // A list changed in a clone: the other keeps its own, the other lists unmoved.
        let before = lists.clone();
        lists.remove(0, 4);
        lists.remove(2, 99);
        assert_eq!([lists.get(0), lists.get(2), lists.get(255)], [&[1, 7][..], &[3, 8], &[5]]);
        assert_eq!(before.get(0), &[1, 4, 7]);
        assert!(Arc::ptr_eq(&lists.blocks[1], &before.blocks[1]), "the block not changed is still shared");
        lists.remove(0, 1);
        lists.remove(0, 7);
        lists.push(1, 9);
        assert_eq!([lists.get(0), lists.get(1), lists.get(2)], [&[][..], &[9], &[3, 8]]);
    }

    #[test]
    fn numbering_the_communes_in_code_order_keeps_every_list() {
        let mut h = AdoptionIndex::default();
        let codes = ["35238", "29232", "2A004", "01001", "29019", "35001"];
        let cats = ["copieur", "etat-civil"];
        // 300 adoptions over six communes and two categories, communes in no order.
        for id in 1..=300u64 {
            let mut a = adoption(id, codes[(id * 7 % 6) as usize], if id % 3 == 0 { "a" } else { "b" });
            a.category = Slug::parse(cats[(id % 2) as usize]).unwrap();
            h.add_adoption(a);
        }
        let lists = |h: &AdoptionIndex| -> Vec<Vec<u64>> {
            let code = |c: &str| InseeCode::parse(c).unwrap();
            cats.iter()
                .flat_map(|k| codes.iter().map(move |c| (Slug::parse(k).unwrap(), code(c))))
                .map(|(k, c)| h.of_commune_in(&c, &k).map(|a| a.id).collect())
                .collect()
        };
        let before = lists(&h);
        let all_before: Vec<Vec<u64>> = codes.iter().map(|c| h.of_commune(&InseeCode::parse(c).unwrap()).map(|a| a.id).collect()).collect();
        assert_eq!(before[0][..4], [6, 12, 18, 24], "copieur (even ids) of 35238 (id × 7 ≡ 0 mod 6)");
        assert_eq!(h.numbers.get(&InseeCode::parse("35238").unwrap()), Some(5), "numbered as they came: 35238 last (its first adoption is id 6)");
        h.shrink_to_fit();
        assert_eq!(lists(&h), before);
        assert_eq!(codes.iter().map(|c| h.of_commune(&InseeCode::parse(c).unwrap()).map(|a| a.id).collect::<Vec<_>>()).collect::<Vec<_>>(), all_before);
        let numbers: Vec<Option<u32>> =
            ["01001", "29019", "29232", "35001", "35238", "2A004"].iter().map(|c| h.numbers.get(&InseeCode::parse(c).unwrap())).collect();
        assert_eq!(numbers, [Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)]);
        // A commune that comes after takes the next number.
        h.add_adoption(adoption(301, "22278", "a"));
        assert_eq!(h.numbers.get(&InseeCode::parse("22278").unwrap()), Some(6));
        assert_eq!(h.of_commune(&InseeCode::parse("22278").unwrap()).map(|a| a.id).collect::<Vec<_>>(), [301]);
    }

    #[test]
    fn sums_are_kept_for_the_adoptions_that_can_be_scored_only() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let record = |id: u64, adoption_id: u64, date: &str, reliability: u8| Feedback { date: d(date), ..feedback(id, adoption_id, reliability) };
        let ended = |id: u64, commune: &str, until: &str| Adoption { until: Some(d(until)), ..adoption(id, commune, "copieur-a") };
        let (today, basis) = (d("2026-11-29"), SumsBasis::new(d("2026-11-29"), 0.25, 0.15, 36.0));
        let mut h = AdoptionIndex::default();
        // 1 in service, 2 ended before the date, 3 ending after it, 4 ending on it (not in
        // service on it).
        h.add_adoption(adoption(1, "29019", "copieur-a"));
        h.add_adoption(ended(2, "29232", "2024-06-30"));
        h.add_adoption(ended(3, "35238", "2027-01-31"));
        h.add_adoption(ended(4, "22278", "2026-11-29"));
        for (id, adoption_id, r) in [(10, 1, 4), (11, 2, 2), (12, 2, 3), (13, 3, 5), (14, 4, 1)] {
            h.add_feedback(record(id, adoption_id, "2022-05-01", r));
        }
        h.keep_feedback_sums(basis);
        let kept = |h: &AdoptionIndex, id: u64| h.feedback_sums_of(h.adoption(id).unwrap(), &basis).map(|s| (s.n, s.sum_reliability));
        assert_eq!([1, 2, 3, 4].map(|id| kept(&h, id)), [Some((1, 4)), None, Some((1, 5)), None]);
        // The ended ones' reliability comes from their records: the same figures.
        assert_eq!([1, 2, 3, 4].map(|id| h.reliability_of(h.adoption(id).unwrap(), today)), [(1, 4.0), (2, 2.5), (1, 5.0), (1, 1.0)]);
        // Added after: in service, kept (and its feedback counted); ended, not.
        h.add_adoption(adoption(5, "56260", "copieur-a"));
        h.add_adoption(ended(6, "29103", "2020-01-31"));
        h.add_feedback(record(15, 5, "2026-01-10", 3));
        h.add_feedback(record(16, 6, "2019-01-10", 2));
        h.add_feedback(record(17, 1, "2026-02-10", 2));
        assert_eq!([1, 5, 6].map(|id| kept(&h, id)), [Some((2, 6)), Some((1, 3)), None]);
        assert_eq!(h.reliability_of(h.adoption(6).unwrap(), today), (1, 2.0));
        // Given an end, 1 keeps its sums; 2 taken back into service has none, read from its
        // records, until the sums are computed again.
        h.add_adoption(ended(1, "29019", "2026-10-31"));
        h.add_adoption(adoption(2, "29232", "copieur-a"));
        assert_eq!([1, 2].map(|id| kept(&h, id)), [Some((2, 6)), None]);
        assert_eq!(h.reliability_of(h.adoption(2).unwrap(), today), (2, 2.5));
        let next_day = SumsBasis::new(d("2026-11-30"), 0.25, 0.15, 36.0);
        h.keep_feedback_sums(next_day);
        let kept = |h: &AdoptionIndex, id: u64| h.feedback_sums_of(h.adoption(id).unwrap(), &next_day).map(|s| (s.n, s.sum_reliability));
        assert_eq!([1, 2, 3, 4, 5, 6].map(|id| kept(&h, id)), [None, Some((2, 5)), Some((1, 5)), None, Some((1, 3)), None]);
    }

    #[test]
    fn reliability_read_from_kept_sums_equals_the_records_for_any_parameters_of_the_same_date() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let record = |id: u64, adoption_id: u64, date: &str, reliability: u8| Feedback { date: d(date), ..feedback(id, adoption_id, reliability) };
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(1, "29019", "copieur-a"));
        h.add_adoption(adoption(2, "29232", "copieur-a"));
        // Adoption 1: 2, 1, 2 on or before the date and a 5 after it; adoption 2: none.
        for (id, date, r) in [(10, "2025-01-10", 2), (11, "2026-03-01", 1), (12, "2026-11-29", 2), (13, "2026-12-01", 5)] {
            h.add_feedback(record(id, 1, date, r));
        }
        let today = d("2026-11-29");
        let (one, two) = (h.adoption(1).unwrap().clone(), h.adoption(2).unwrap().clone());
        let from_records = (h.reliability_of(h.adoption(1).unwrap(), today), h.reliability_of(h.adoption(2).unwrap(), today));
        assert_eq!(from_records, ((3, 5.0 / 3.0), (0, 0.0)));
        // Kept for the same date with other penalties and half-life: the same figures, read from
        // the sums (a record added after is counted there too).
        h.keep_feedback_sums(SumsBasis::new(today, 0.9, 0.3, 6.0));
        h.add_feedback(record(14, 2, "2026-06-01", 4));
        assert_eq!(h.feedback_sums_of(h.adoption(2).unwrap(), &SumsBasis::new(today, 0.9, 0.3, 6.0)).map(|s| s.n), Some(1));
        assert_eq!((h.reliability_of(h.adoption(1).unwrap(), today), h.reliability_of(h.adoption(2).unwrap(), today)), ((3, 5.0 / 3.0), (1, 4.0)));
        assert_eq!(h.ratings_of(h.adoption(2).unwrap(), today).mean_reliability, 4.0);
        // Another date, or a copy not read from the index: the records, with that date's cut.
        assert_eq!(h.reliability_of(h.adoption(1).unwrap(), d("2026-12-31")), (4, 10.0 / 4.0));
        assert_eq!((h.reliability_of(&one, today), h.reliability_of(&two, today)), ((3, 5.0 / 3.0), (1, 4.0)));
    }

    #[test]
    fn slugs_are_stored_once() {
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(1, "29019", "copieur-a"));
        h.add_adoption(adoption(2, "29232", "copieur-a"));
        let (a, b) = (h.adoption(1).unwrap(), h.adoption(2).unwrap());
        // Separately parsed, the same text now shares one allocation.
        assert!(std::ptr::eq(a.product.as_str().as_ptr(), b.product.as_str().as_ptr()));
        assert!(std::ptr::eq(a.category.as_str().as_ptr(), b.category.as_str().as_ptr()));
        let (ga, gb) = (a.generation.as_ref().unwrap(), b.generation.as_ref().unwrap());
        assert!(std::ptr::eq(ga.as_str().as_ptr(), gb.as_str().as_ptr()));
    }

    #[test]
    fn in_service_by_category_follows_ends_and_replacements() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cat = Slug::parse("copieur").unwrap();
        let ids = |h: &AdoptionIndex, date: &str| {
            let mut v: Vec<u64> = h.in_category(&cat).filter(|a| a.active_on(d(date))).map(|a| a.id).collect();
            v.sort();
            v
        };
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(1, "29019", "copieur-a")); // since 2020-01-01, no end
        let mut ended = adoption(2, "29232", "copieur-b");
        ended.until = Some(d("2022-06-01"));
        h.add_adoption(ended);
        assert_eq!(ids(&h, "2026-01-01"), vec![1]);
        // Before the end, the ended one was in service too (a backtest looks at past dates).
        assert_eq!(ids(&h, "2021-01-01"), vec![1, 2]);
        assert_eq!(ids(&h, "2019-01-01"), Vec::<u64>::new());
        // Ending adoption 1 (PATCH) moves it; reopening moves it back.
        let mut a1 = adoption(1, "29019", "copieur-a");
        a1.until = Some(d("2025-01-01"));
        h.add_adoption(a1.clone());
        assert_eq!(ids(&h, "2026-01-01"), Vec::<u64>::new());
        assert_eq!(ids(&h, "2024-12-31"), vec![1]);
        let mut ended_ids: Vec<u64> = h.in_category(&cat).filter(|a| a.until.is_some()).map(|a| a.id).collect();
        ended_ids.sort();
        assert_eq!(ended_ids, vec![1, 2]);
        a1.until = None;
        h.add_adoption(a1);
        assert_eq!(ids(&h, "2026-01-01"), vec![1]);
        assert_eq!(h.in_category(&cat).map(|a| a.id).collect::<Vec<_>>(), vec![1, 2], "without an end first");
        assert_eq!(h.category_len(&cat), 2);
        // A replacement in another category and commune is re-indexed there.
        let mut moved = adoption(2, "35238", "copieur-b");
        moved.category = Slug::parse("poste-de-travail").unwrap();
        h.add_adoption(moved);
        assert_eq!(h.category_len(&cat), 1);
        assert_eq!(h.in_category(&cat).map(|a| a.id).collect::<Vec<_>>(), vec![1]);
        let other = Slug::parse("poste-de-travail").unwrap();
        assert_eq!(h.in_category(&other).filter(|a| a.active_on(d("2026-01-01"))).map(|a| a.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(h.of_commune(&InseeCode::parse("29232").unwrap()).count(), 0);
        assert_eq!(h.of_commune(&InseeCode::parse("35238").unwrap()).map(|a| a.id).collect::<Vec<_>>(), vec![2]);
        // The per-category lists and keys follow the move too.
        assert_eq!(h.of_commune_in(&InseeCode::parse("35238").unwrap(), &other).map(|a| a.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(h.of_commune_in(&InseeCode::parse("29232").unwrap(), &cat).count(), 0);
        assert_eq!(h.of_commune_in(&InseeCode::parse("29019").unwrap(), &cat).map(|a| a.id).collect::<Vec<_>>(), vec![1]);
        let keys = |c: &Slug| h.keys_in_category(c, d("2026-01-01")).map(|(p, g, on)| (p.to_string(), g.map(|g| g.to_string()), on)).collect::<Vec<_>>();
        assert_eq!(keys(&cat), vec![("copieur-a".to_string(), Some("2024".to_string()), true)]);
        assert_eq!(keys(&other), vec![("copieur-b".to_string(), Some("2024".to_string()), true)]);
        let adopters = |c: &Slug| h.adoptions_by_key(c).flat_map(|(.., x)| x.iter().map(|a| a.commune.to_string())).collect::<Vec<_>>();
        assert_eq!((adopters(&cat), adopters(&other)), (vec!["29019".to_string()], vec!["35238".to_string()]));
    }

    #[test]
    fn whether_a_key_is_in_service_is_what_its_adoptions_say_after_any_replacement() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let cat = Slug::parse("copieur").unwrap();
        let dates = ["2015-01-01", "2019-12-31", "2020-01-01", "2021-06-30", "2021-07-01", "2023-01-01", "2024-12-31", "2025-01-01", "2030-01-01"];
        // Every key at every date, from the bounds and from reading every adoption of the key.
        let check = |h: &AdoptionIndex, when: &str| {
            for date in dates.map(d) {
                let kept: Vec<bool> = h.keys_in_category(&cat, date).map(|(.., on)| on).collect();
                let read: Vec<bool> = h.adoptions_by_key(&cat).map(|(.., x)| x.iter().any(|a| a.active_on(date))).collect();
                assert_eq!(kept, read, "{when}, {date}");
            }
        };
        let mut h = AdoptionIndex::default();
        let mut a = adoption(1, "29019", "copieur-a"); // since 2020-01-01
        a.until = Some(d("2021-07-01"));
        h.add_adoption(a.clone());
        let mut b = adoption(2, "29232", "copieur-a");
        b.since = d("2024-12-31");
        h.add_adoption(b.clone());
        check(&h, "one ended, one open from 2024-12-31");
        // The old key of copieur-a, all ended: out of service on 2023-01-01 without reading them.
        assert_eq!(h.keys_in_category(&cat, d("2023-01-01")).map(|(.., on)| on).collect::<Vec<_>>(), vec![false]);
        assert_eq!(h.keys_in_category(&cat, d("2021-06-30")).map(|(.., on)| on).collect::<Vec<_>>(), vec![true]);
        // The open one ends earlier than the other: the key's latest end and open start move.
        b.until = Some(d("2025-01-01"));
        h.add_adoption(b.clone());
        check(&h, "both ended");
        // Its end moves back earlier (a correction): the bound is computed again, not kept.
        b.until = Some(d("2024-12-31"));
        h.add_adoption(b.clone());
        check(&h, "an end moved earlier");
        // Only its workstations change: the dates, and so the bounds, stay.
        b.workstations = Some(3);
        h.add_adoption(b.clone());
        check(&h, "workstations only");
        // Reopened, then moved to another product: both keys follow.
        a.until = None;
        h.add_adoption(a.clone());
        check(&h, "reopened");
        a.product = Slug::parse("copieur-b").unwrap();
        h.add_adoption(a);
        check(&h, "moved to another key");
        assert_eq!(
            h.keys_in_category(&cat, d("2023-01-01")).map(|(p, _, on)| (p.to_string(), on)).collect::<Vec<_>>(),
            vec![("copieur-a".to_string(), false), ("copieur-b".to_string(), true)]
        );
    }

    #[test]
    fn feedback_follows_its_adoption_and_replacement_keeps_it() {
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(1, "29019", "copieur-a"));
        h.add_adoption(adoption(2, "29232", "copieur-b"));
        assert!(h.add_feedback(feedback(10, 2, 5)));
        assert!(h.add_feedback(feedback(11, 2, 3)));
        assert!(!h.add_feedback(feedback(11, 2, 3)), "same id: ignored");
        assert!(!h.add_feedback(feedback(12, 99, 1)), "unknown adoption: ignored");
        assert!(h.add_feedback(feedback(9, 2, 4)), "an older id goes in its place");
        assert!(!h.add_feedback(feedback(10, 2, 1)), "same id, even not the last: ignored");
        assert_eq!(h.feedback_count(), 3);
        assert_eq!(h.feedback(2).iter().map(|f| f.id).collect::<Vec<_>>(), vec![9, 10, 11]);
        assert!(h.feedback(1).is_empty());
        assert!(h.feedback(99).is_empty());
        let mut ended = adoption(2, "29232", "copieur-b");
        ended.until = NaiveDate::from_ymd_opt(2022, 1, 1);
        h.add_adoption(ended.clone());
        assert_eq!(h.adoption_count(), 2);
        assert_eq!(h.adoption(2), Some(&ended));
        assert_eq!(h.ratings(2, NaiveDate::from_ymd_opt(2023, 1, 1).unwrap()).mean_reliability, 4.0);
        assert_eq!(h.of_commune(&InseeCode::parse("29232").unwrap()).count(), 1);
    }

    #[test]
    fn the_index_keeps_compact_reports_and_gives_back_whole_records() {
        assert_eq!(std::mem::size_of::<Report>(), 32);
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(2, "29232", "copieur-b"));
        let with_comment = Feedback { comment: Some("panne du scanner".into()), downtime_hours: 3.5, incidents: 2, ..feedback(10, 2, 4) };
        assert!(h.add_feedback(with_comment.clone()));
        assert!(h.add_feedback(feedback(11, 2, 3)));
        // Every field comes back, the adoption id from the record's place, the comment from aside.
        assert_eq!(h.feedback(2), vec![with_comment, feedback(11, 2, 3)]);
        assert_eq!(h.reports(2).iter().map(|r| (r.id, r.reliability, r.incidents)).collect::<Vec<_>>(), vec![(10, 4, 2), (11, 3, 0)]);
    }

    /// Everything the index answers about its records, as text: two indexes that answer the
    /// same give the same digest.
    fn digest(h: &AdoptionIndex, basis: &SumsBasis) -> String {
        let date = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
        let mut out = format!("{} adoptions, {} feedback\n", h.adoption_count(), h.feedback_count());
        let mut ids: Vec<u64> = h.adoptions().map(|a| a.id).collect();
        ids.sort();
        for id in ids {
            let a = h.adoption(id).unwrap();
            // Read by address (the hot path's way) and by id: the same.
            assert_eq!(h.reports_of(a), h.reports(id));
            assert_eq!(h.abandoned_by(a, date), h.abandoned_by(&a.clone(), date));
            out += &format!(
                "{a:?} {:?} abandoned {} sums {:?} rel {:?}\n",
                h.feedback(id),
                h.abandoned_by(a, date),
                h.feedback_sums_of(a, basis).map(|s| (s.n, s.sum_r.to_bits(), s.sum_rq.to_bits())),
                h.reliability_of(a, basis.today())
            );
        }
        for code in ["29019", "29232", "35238", "56260"] {
            let code = InseeCode::parse(code).unwrap();
            out += &format!("{code}: {:?}\n", h.of_commune(&code).map(|a| a.id).collect::<Vec<_>>());
        }
        for category in ["copieur", "site-web"] {
            let c = Slug::parse(category).unwrap();
            let mut all: Vec<u64> = h.in_category(&c).map(|a| a.id).collect();
            all.sort();
            let mut active: Vec<u64> = h.in_category(&c).filter(|a| a.active_on(date)).map(|a| a.id).collect();
            active.sort();
            let keys: Vec<String> = h.adoptions_by_key(&c).map(|(p, g, v)| format!("{p}/{g:?}: {:?}", v.iter().map(|a| a.id).collect::<Vec<_>>())).collect();
            let by_commune = h.in_category_by_commune(&c).of_commune(&InseeCode::parse("29019").unwrap()).map(|a| a.id).collect::<Vec<_>>();
            out += &format!("{c}: {all:?} {active:?} {keys:?} {by_commune:?} prior {}\n", h.category_prior(&c, 0.5, 0.1, date).to_bits());
        }
        out
    }

    #[test]
    fn a_clone_is_a_version_that_the_writes_to_the_next_do_not_change() {
        let d = |y: i32, m: u32| NaiveDate::from_ymd_opt(y, m, 1).unwrap();
        let basis = SumsBasis::new(d(2024, 6), 0.5, 0.1, 24.0);
        let communes = ["29019", "29232", "35238", "56260"];
        // 5,000 adoptions (more than one chunk of feedback lists and of kept sums), in two
        // categories, some ended, with 3 reports each.
        let record = |id: u64| {
            let mut a = adoption(id, communes[(id % 4) as usize], ["copieur-a", "copieur-b", "copieur-c"][(id % 3) as usize]);
            if id.is_multiple_of(7) {
                a.category = Slug::parse("site-web").unwrap();
            }
            a.since = d(2015 + (id % 8) as i32, 1 + (id % 12) as u32);
            if id.is_multiple_of(5) {
                a.until = Some(a.since + chrono::Days::new(400));
            }
            a
        };
        let reports = |id: u64| {
            (0..3).map(move |k| Feedback {
                date: d(2023, 1 + k as u32),
                comment: (k == 1).then(|| format!("note {id}")),
                ..feedback(10_000 + id * 3 + k, id, 1 + ((id + k) % 5) as u8)
            })
        };
        let build = |ids: std::ops::Range<u64>, then: &dyn Fn(&mut AdoptionIndex)| {
            let mut h = AdoptionIndex::default();
            for id in ids.clone() {
                h.add_adoption(record(id));
            }
            for id in ids {
                reports(id).for_each(|f| assert!(h.add_feedback(f)));
            }
            h.keep_feedback_sums(basis);
            then(&mut h);
            h
        };
        // The writes: new adoptions with feedback, an adoption ended, one moved to another
        // commune and category, feedback on old adoptions (one out of id order).
        let writes = |h: &mut AdoptionIndex| {
            for id in 5_000..5_040 {
                h.add_adoption(record(id));
                reports(id).for_each(|f| assert!(h.add_feedback(f)));
            }
            let mut ended = record(12);
            ended.until = Some(d(2024, 1));
            h.add_adoption(ended);
            let mut moved = record(13);
            moved.commune = InseeCode::parse("29019").unwrap();
            moved.category = Slug::parse("site-web").unwrap();
            h.add_adoption(moved);
            assert!(h.add_feedback(feedback(900_000, 4_321, 2)));
            assert!(h.add_feedback(feedback(5, 1, 5)));
        };
        let before = build(0..5_000, &|_| ());
        let mut next = before.clone();
        let held = before.clone();
        writes(&mut next);
        // The version held answers as before the writes; the next one as if built with them.
        assert_eq!(digest(&held, &basis), digest(&build(0..5_000, &|_| ()), &basis));
        assert_eq!(digest(&next, &basis), digest(&build(0..5_000, &writes), &basis));
        assert_ne!(digest(&held, &basis), digest(&next, &basis));
        assert_eq!((held.adoption_count(), next.adoption_count(), held.version() < next.version()), (5_000, 5_040, true));
        assert_eq!(held.adoption(12).unwrap().until, record(12).until);
        assert_eq!(next.adoption(12).unwrap().until, Some(d(2024, 1)));
    }

    #[test]
    fn a_clone_made_while_a_reader_fills_the_prior_cache_starts_with_an_empty_one() {
        let mut h = AdoptionIndex::default();
        h.add_adoption(adoption(1, "29019", "copieur-a"));
        assert!(h.add_feedback(feedback(2, 1, 4)));
        let (cat, date) = (Slug::parse("copieur").unwrap(), NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        let prior = h.category_prior(&cat, 0.5, 0.1, date);
        // A reader writing a variant into the cache: the clone does not wait for it.
        let filling = h.priors.0.write().unwrap();
        let clone = h.clone();
        drop(filling);
        assert!(clone.priors.0.read().unwrap().is_empty());
        assert_eq!(clone.category_prior(&cat, 0.5, 0.1, date), prior);
        // Otherwise the clone takes the variants already computed.
        assert_eq!(h.clone().priors.0.read().unwrap().len(), 1);
    }
}
