//! The demo history: a **simulated** adoption and feedback history over the real neighbour
//! graph, deterministic from a seed. Every record it makes has `simulated: true`; nothing here
//! is a real opinion about a real product, and no rule of it depends on a product's name,
//! vendor or release rhythm: every product-level draw (availability where the sources give no
//! date, hidden quality, local support) comes from the same distribution for every product.
//!
//! The model (parameters in [`SimParams`], fixed before any evaluation of the recommender), run
//! month by month from `start` to `end`, category by category:
//!
//! - **Availability.** A generation can be adopted from its release date in the sources
//!   (endoflife.date `releaseDate`), else from the month its documentation dates from, else
//!   from a **simulated** date ([`SimulatedDate`]): a product whose sources give no date at all
//!   (most mairie business software, and a whole product line, whose start the sources do not
//!   give) becomes available on a month drawn uniformly in 2005-2012; a later undated
//!   generation comes 24 to 72 months (uniform) after the one before it.
//! - **Diffusion.** A commune without a product in a category adopts one with probability
//!   `1 - exp(-h · size · (1 + a·s_nb + b·s_epci) · e)`, where `h` is the base hazard, `size` a
//!   factor of its population class, `s_nb` the share of its graph neighbours and `s_epci` the
//!   share of its EPCI that already run something there, `e` the election factor below. At
//!   `start` a share of communes is already equipped in the categories with a product
//!   available then. The base hazard of `site-web` is calibrated so that about 49 % of communes
//!   under 2,000 inhabitants have a website at the end of 2013 (M@rsoin survey figure).
//! - **Choice.** A product available then is drawn with weight `1 + c · share of neighbours
//!   and EPCI members running it`; the generation is the newest released then, or with
//!   probability `one_behind` the one before it. Quality plays no part in the first choice.
//! - **Upgrades.** From `upgrade_lead_months` before a generation's end of support, each month
//!   with probability `upgrade_rate · e`, the commune moves to a newer supported generation of
//!   its product. **Switching**: a commune whose own reports are poor (mean reliability under
//!   2.5 over at least 2, [`is_poor_rating`]) leaves its product with probability
//!   `switch_rate · e` a month, for another available product drawn uniformly.
//! - **Municipal elections** (March 2008, 2014, 2020, 2026) are a moment of change: in the 12
//!   months from each, `e = 1 + election_boost`, else `e = 1`. Switch: `election_boost = 0`.
//! - **Realised quality** of a report, in reliability points:
//!   `L = q_gen + s_local + help`. `q_gen ~ N(0, quality_sd)` is the generation's hidden
//!   quality (one draw per generation, or per product without generations). `s_local` is the
//!   local support of the product where the commune is (an integrator, a departmental or
//!   intercommunal IT syndicate): one draw `N(0, local_support_sd/√2)` per (département,
//!   product) plus one per (EPCI, product); switch: `local_support_sd = 0`. `help =
//!   neighbour_help · (1 - exp(-n / help_scale))`, `n` the neighbours and EPCI members running
//!   the same generation at the report's date: neighbouring mairies advise and help one
//!   another (the field study's central observation); switch: `neighbour_help = 0`.
//! - **Feedback**: one report about 6 months after adoption, then yearly (at most 6).
//!   Incidents are Poisson with mean `incident_base · (1 + teething · exp(-age / 9)) · e^(-L)`,
//!   `age` the months between the generation's (possibly simulated) availability and the
//!   report: teething depends on the generation's age, never on how often its vendor releases.
//!   Reliability = `round(base_reliability + L - 0.45 · incidents + N(0, 0.5))` in 1-5;
//!   downtime = incidents × Exp(mean 3 h); support = `round(3.8 + s_local + N(0, 0.7))` in 1-5.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chrono::{Datelike, Days, Months, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal, Poisson};
use serde::{Deserialize, Serialize};

use crate::core::catalog::{Catalog, Product, months_between};
use crate::core::domain::{GenerationId, SizeClass, Slug};
use crate::core::history::{Adoption, Feedback, is_poor_rating};
use crate::core::territory::{CommuneIdx, Territory};
use crate::error::{Error, Result};
use smallvec::SmallVec;

/// Parameters of the simulation; see the module doc for the model.
#[derive(Clone, Debug)]
pub struct SimParams {
    /// Seed of every random draw. Default 2026.
    pub seed: u64,
    /// First simulated month. Default 2005-01-01.
    pub start: NaiveDate,
    /// Last simulated day (usually today).
    pub end: NaiveDate,
    /// Monthly base hazard for categories other than `site-web`. Default 0.004 (about 5 % a
    /// year for an isolated commune of 500 to 1,999 inhabitants).
    pub base_hazard: f64,
    /// Weight `a` of the neighbours' share. Default 3.
    pub neighbour_influence: f64,
    /// Weight `b` of the EPCI's share. Default 1.5.
    pub epci_influence: f64,
    /// Weight `c` of imitation in the product choice. Default 4.
    pub imitation: f64,
    /// Probability of choosing the generation before the newest. Default 0.4.
    pub one_behind: f64,
    /// Months before end of support when upgrades start. Default 6.
    pub upgrade_lead_months: u32,
    /// Monthly probability of upgrading once in the upgrade window. Default 0.12.
    pub upgrade_rate: f64,
    /// Monthly probability of leaving a poorly rated product. Default 0.03.
    pub switch_rate: f64,
    /// Mean incidents per report for a mature generation of average quality. Default 0.6.
    pub incident_base: f64,
    /// Extra incidents for a brand-new generation (multiplier at age 0, decaying with a 9-month
    /// time constant). Default 2.
    pub teething: f64,
    /// Mean rating of a mature generation of average quality without incidents. Default 4.3.
    pub base_reliability: f64,
    /// Standard deviation of a generation's hidden quality, reliability points. Default 0.5.
    pub quality_sd: f64,
    /// Standard deviation of the local support effect of a product where a commune is,
    /// reliability points (half the variance per département, half per EPCI); 0 switches the
    /// mechanism off. Default 0.5.
    pub local_support_sd: f64,
    /// Most reliability points gained from neighbours and EPCI members running the same
    /// generation; 0 switches the mechanism off. Default 0.6.
    pub neighbour_help: f64,
    /// Number of such peers that brings `1 - 1/e` (63 %) of `neighbour_help`. Default 2.
    pub help_scale: f64,
    /// Extra rate of adoption, upgrade and switching in the 12 months from a municipal
    /// election (`e = 1 + election_boost`); 0 switches the mechanism off. Default 1.
    pub election_boost: f64,
    /// Target share of communes under 2,000 inhabitants with a website at the end of 2013.
    /// Default 0.49 (M@rsoin survey).
    pub website_target_2013: f64,
}

/// Names of the parameters [`SimParams::set`] takes, with their bounds (name, min, max).
pub const SIM_PARAM_BOUNDS: &[(&str, f64, f64)] = &[
    ("quality_sd", 0.0, 2.0),
    ("local_support_sd", 0.0, 2.0),
    ("neighbour_help", 0.0, 2.0),
    ("help_scale", 0.1, 20.0),
    ("election_boost", 0.0, 10.0),
    ("teething", 0.0, 10.0),
    ("imitation", 0.0, 20.0),
    ("one_behind", 0.0, 1.0),
    ("switch_rate", 0.0, 1.0),
    ("upgrade_rate", 0.0, 1.0),
];

impl SimParams {
    /// Defaults for a history ending on `end`.
    pub fn new(seed: u64, end: NaiveDate) -> Self {
        SimParams {
            seed,
            start: NaiveDate::from_ymd_opt(2005, 1, 1).unwrap_or(NaiveDate::MIN),
            end,
            base_hazard: 0.004,
            neighbour_influence: 3.0,
            epci_influence: 1.5,
            imitation: 4.0,
            one_behind: 0.4,
            upgrade_lead_months: 6,
            upgrade_rate: 0.12,
            switch_rate: 0.03,
            incident_base: 0.6,
            teething: 2.0,
            base_reliability: 4.3,
            quality_sd: 0.5,
            local_support_sd: 0.5,
            neighbour_help: 0.6,
            help_scale: 2.0,
            election_boost: 1.0,
            website_target_2013: 0.49,
        }
    }

    /// The same with the two mechanisms that make place matter switched off (local support
    /// and neighbours' help): the ablation of `voisinage eval`, where the graph has nothing to
    /// find.
    pub fn without_place(mut self) -> Self {
        self.local_support_sd = 0.0;
        self.neighbour_help = 0.0;
        self
    }

    /// Overrides one parameter of [`SIM_PARAM_BOUNDS`] from its text. Errors: `Malformed` for
    /// an unknown name or a value that is not a number, `Invalid` out of bounds.
    pub fn set(&mut self, name: &str, raw: &str) -> Result<()> {
        let &(_, lo, hi) = SIM_PARAM_BOUNDS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
            let names: Vec<&str> = SIM_PARAM_BOUNDS.iter().map(|(n, _, _)| *n).collect();
            Error::Malformed(format!("unknown simulation parameter '{}' (known: {})", name.chars().take(40).collect::<String>(), names.join(", ")))
        })?;
        let v: f64 = raw.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| Error::Malformed(format!("{name} must be a number")))?;
        if !(lo..=hi).contains(&v) {
            return Err(Error::Invalid(format!("{name} must be {lo} to {hi}, got {v}")));
        }
        let field = match name {
            "quality_sd" => &mut self.quality_sd,
            "local_support_sd" => &mut self.local_support_sd,
            "neighbour_help" => &mut self.neighbour_help,
            "help_scale" => &mut self.help_scale,
            "election_boost" => &mut self.election_boost,
            "teething" => &mut self.teething,
            "imitation" => &mut self.imitation,
            "one_behind" => &mut self.one_behind,
            "switch_rate" => &mut self.switch_rate,
            _ => &mut self.upgrade_rate,
        };
        *field = v;
        Ok(())
    }
}

/// A date the simulation made up because the sources give none: when a product (or one of its
/// generations) becomes adoptable in the demo history. Shown with the demo's description.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SimulatedDate {
    /// The product.
    #[schema(value_type = String)]
    pub product: Slug,
    /// The generation, `None` for a product without generations.
    #[schema(value_type = Option<String>)]
    pub generation: Option<GenerationId>,
    /// First day it can be adopted in the simulation.
    pub date: NaiveDate,
}

/// The simulated history.
#[derive(Debug)]
pub struct DemoHistory {
    /// Adoptions, ids from 1.
    pub adoptions: Vec<Adoption>,
    /// Feedback, ids from 1.
    pub feedback: Vec<Feedback>,
    /// The calibrated monthly base hazard of `site-web`.
    pub website_hazard: f64,
    /// Share of communes under 2,000 inhabitants with a website on 2013-12-31 in the
    /// simulation (some run a generation older than the catalogue's, not recorded).
    pub website_share_2013: f64,
    /// The availability dates the simulation made up, by product then generation order.
    pub simulated_dates: Vec<SimulatedDate>,
}

/// Share of communes already equipped at `start`, by category kind and slug.
fn initial_share(slug: &str, kind: &str) -> f64 {
    match (slug, kind) {
        ("site-web", _) => 0.10,
        (_, "business software") => 0.5,
        (_, "equipment/service") => 0.6,
        _ => 0.4,
    }
}

/// Adoption speed by population class: larger communes have staff and adopt earlier.
fn size_factor(c: SizeClass) -> f64 {
    match c {
        SizeClass::Under500 => 0.6,
        SizeClass::From500To1999 => 1.0,
        SizeClass::From2000To3499 => 1.4,
        SizeClass::From3500To9999 => 1.8,
        SizeClass::Over10000 => 2.2,
    }
}

fn fnv(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// A random stream for one purpose (`what`) and one product, the same for every product.
fn stream(seed: u64, what: &str, product: &Slug) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ fnv(&format!("{what}/{product}")))
}

fn normal(rng: &mut ChaCha8Rng, mean: f64, sd: f64) -> f64 {
    if sd <= 0.0 {
        return mean;
    }
    Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
}

/// Municipal election months (the first round, March).
const ELECTIONS: [i32; 4] = [2008, 2014, 2020, 2026];

/// The election factor `e` of a month: `1 + boost` in the 12 months from a municipal election.
fn election_factor(month: NaiveDate, boost: f64) -> f64 {
    let in_window = ELECTIONS.iter().any(|&y| {
        let from = NaiveDate::from_ymd_opt(y, 3, 1);
        let to = NaiveDate::from_ymd_opt(y + 1, 3, 1);
        from.zip(to).is_some_and(|(f, t)| month >= f && month < t)
    });
    if in_window { 1.0 + boost } else { 1.0 }
}

/// The territory as the simulation reads it.
struct World<'a> {
    t: &'a Territory,
    p: &'a SimParams,
    nb: Vec<Vec<CommuneIdx>>,
    /// EPCI index of each commune.
    epci_of: Vec<Option<usize>>,
    /// Members of each EPCI.
    epci_size: Vec<usize>,
    /// Neighbours and EPCI members of each commune, without itself, sorted, no repeats.
    peers: Vec<Vec<CommuneIdx>>,
    size: Vec<f64>,
    /// Département index of each commune.
    dept_of: Vec<usize>,
    depts: usize,
}

impl<'a> World<'a> {
    fn new(t: &'a Territory, p: &'a SimParams) -> Self {
        let n = t.communes().len();
        let nb: Vec<Vec<CommuneIdx>> = (0..n as CommuneIdx).map(|i| t.neighbours(i).into_iter().map(|(j, _)| j).collect()).collect();
        let epci_index: BTreeMap<_, usize> = t.epcis().iter().enumerate().map(|(k, e)| (e.siren, k)).collect();
        let epci_of: Vec<Option<usize>> = t.communes().iter().map(|c| c.epci.and_then(|s| epci_index.get(&s).copied())).collect();
        let mut epci_size = vec![0; epci_index.len()];
        epci_of.iter().flatten().for_each(|&e| epci_size[e] += 1);
        let peers = (0..n as CommuneIdx)
            .map(|i| {
                let members = t.commune(i).epci.map(|s| t.members(&s)).unwrap_or(&[]);
                let mut v: Vec<CommuneIdx> = nb[i as usize].iter().chain(members).copied().filter(|&j| j != i).collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let dept_index: BTreeMap<&str, usize> = {
            let mut d: Vec<&str> = t.communes().iter().map(|c| c.department.as_str()).collect();
            d.sort_unstable();
            d.dedup();
            d.into_iter().enumerate().map(|(k, d)| (d, k)).collect()
        };
        let dept_of = t.communes().iter().map(|c| dept_index.get(c.department.as_str()).copied().unwrap_or(0)).collect();
        World {
            t,
            p,
            nb,
            epci_of,
            epci_size,
            peers,
            size: t.communes().iter().map(|c| size_factor(c.size_class())).collect(),
            dept_of,
            depts: dept_index.len(),
        }
    }
}

/// A product as the simulation sees it: when each generation can be adopted, how good each
/// is, and how well it is supported where each commune is.
struct SimProduct<'a> {
    product: &'a Product,
    /// First day the product can be adopted (simulated, the same distribution for every
    /// product: the sources never give when a product became available).
    available: NaiveDate,
    /// First adoptable day of each generation (index as in `product.generations`), never before
    /// `available`; one entry, `available`, when it has no generations.
    dates: Vec<NaiveDate>,
    /// Last month of the generations older than the catalogue's first ([`PRE_CATALOGUE`]):
    /// 24 months after that first generation's date. `None` when the product has no
    /// generation dated after `available`.
    pre_catalogue_until: Option<NaiveDate>,
    /// Hidden quality of each generation (same index), reliability points.
    quality: Vec<f64>,
    /// Local support effect where each commune is (département + EPCI), reliability points.
    local: Vec<f64>,
    /// First month of the upgrades of each generation (same index as `product.generations`):
    /// `upgrade_lead_months` before its end of support; `None` without one.
    upgrade_from: Vec<Option<NaiveDate>>,
    /// The same for the generations older than the catalogue's ([`PRE_CATALOGUE`]), from
    /// `pre_catalogue_until`.
    pre_catalogue_upgrade_from: Option<NaiveDate>,
}

/// The slot of a commune running a generation older than the catalogue's first of its product:
/// it is simulated (it keeps the commune equipped, its peers helped) but not recorded; the
/// commune is recorded from its move to a catalogue generation.
const PRE_CATALOGUE: usize = usize::MAX;

impl SimProduct<'_> {
    /// Generation indexes adoptable at `month` (available, support not ended), oldest first.
    fn adoptable(&self, month: NaiveDate) -> Vec<usize> {
        if month < self.available {
            return Vec::new();
        }
        if self.product.generations.is_empty() {
            return vec![0];
        }
        (0..self.dates.len()).filter(|&k| self.dates[k] <= month && !self.product.generations[k].support(month).is_ended()).collect()
    }

    /// Whether a generation older than the catalogue's can be adopted at `month`.
    fn pre_catalogue(&self, month: NaiveDate) -> bool {
        month >= self.available && self.pre_catalogue_until.is_some_and(|u| month < u) && self.dates.first().is_some_and(|d| month < *d)
    }

    /// The first month of the upgrades away from generation `slot` ([`PRE_CATALOGUE`] too).
    fn upgrade_from(&self, slot: usize) -> Option<NaiveDate> {
        if slot == PRE_CATALOGUE { self.pre_catalogue_upgrade_from } else { self.upgrade_from.get(slot).copied().flatten() }
    }

    fn generation_id(&self, slot: usize) -> Option<GenerationId> {
        self.product.generations.get(slot).map(|g| g.id.clone())
    }
}

/// Builds a product's simulation facts; pushes the dates it made up onto `made_up`.
fn sim_product<'a>(w: &World, product: &'a Product, made_up: &mut Vec<SimulatedDate>) -> SimProduct<'a> {
    let p = w.p;
    let mut rng = stream(p.seed, "availability", &product.id);
    let month0 = |k: u32| p.start.with_day(1).and_then(|s| s.checked_add_months(Months::new(k))).unwrap_or(p.start);
    let available = month0(rng.random_range(0..96));
    made_up.push(SimulatedDate { product: product.id.clone(), generation: None, date: available });
    let mut dates = Vec::new();
    if product.generations.is_empty() {
        dates.push(available);
    }
    for g in &product.generations {
        let documented = g.documented_since.as_deref().and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok());
        let date = match (g.released.or(documented), dates.last()) {
            (Some(d), _) => d,
            (None, None) => available,
            (None, Some(prev)) => prev.checked_add_months(Months::new(rng.random_range(24..=72))).unwrap_or(*prev),
        };
        if g.released.or(documented).is_none() {
            made_up.push(SimulatedDate { product: product.id.clone(), generation: Some(g.id.clone()), date });
        }
        dates.push(date);
    }
    let pre_catalogue_until = dates.first().filter(|d| **d > available).and_then(|d| d.checked_add_months(Months::new(24)));
    let mut rng = stream(p.seed, "quality", &product.id);
    let quality = (0..dates.len()).map(|_| normal(&mut rng, 0.0, p.quality_sd)).collect();
    let mut rng = stream(p.seed, "local", &product.id);
    let half = p.local_support_sd / std::f64::consts::SQRT_2;
    let dept: Vec<f64> = (0..w.depts).map(|_| normal(&mut rng, 0.0, half)).collect();
    let epci: Vec<f64> = (0..w.epci_size.len()).map(|_| normal(&mut rng, 0.0, half)).collect();
    let local = (0..w.t.communes().len()).map(|i| dept[w.dept_of[i]] + w.epci_of[i].map_or(0.0, |e| epci[e])).collect();
    let lead = |d: NaiveDate| d.checked_sub_months(Months::new(p.upgrade_lead_months));
    let upgrade_from = product.generations.iter().map(|g| g.end_of_support.and_then(lead)).collect();
    let pre_catalogue_upgrade_from = pre_catalogue_until.and_then(lead);
    SimProduct { product, available, dates, pre_catalogue_until, quality, local, upgrade_from, pre_catalogue_upgrade_from }
}

/// What a commune runs in the category being simulated.
#[derive(Clone, Copy)]
struct Cur {
    /// Index in the category's adoptions (`None` before the catalogue).
    adoption: Option<usize>,
    /// Index in the category's products.
    product: usize,
    /// Generation index (0 for a product without generations, [`PRE_CATALOGUE`]).
    slot: usize,
    next_feedback: NaiveDate,
    reports: u32,
    reliability_sum: f64,
}

/// What the products of a category offer in one month, the same for every commune: worked out
/// once a month rather than once per commune and month, where each commune asked every product
/// for a new list of its adoptable generations (with the upgrade month worked out once per
/// generation too, the national simulation took 17-18 s instead of 27-30 s, 2026-12-01).
struct MonthOffer {
    /// Per product (index in the category's products), its generations adoptable
    /// ([`SimProduct::adoptable`]).
    adoptable: Vec<Vec<usize>>,
    /// The products that can be adopted (a generation older than the catalogue's,
    /// [`SimProduct::pre_catalogue`], or one of the catalogue's adoptable), in index order.
    available: Vec<usize>,
    /// Per size factor of a commune ([`size_factor`]), the highest chance of adopting this
    /// month: `1 − exp(−rate)` at the rate every neighbour and every EPCI member running
    /// something would give. Empty (nothing bounded) when the hazard or the election factor is
    /// negative.
    bounds: SmallVec<[(f64, f64); 5]>,
}

impl MonthOffer {
    fn of(products: &[&SimProduct], month: NaiveDate) -> Self {
        let adoptable: Vec<Vec<usize>> = products.iter().map(|sp| sp.adoptable(month)).collect();
        let available = (0..products.len()).filter(|&k| products[k].pre_catalogue(month) || !adoptable[k].is_empty()).collect();
        MonthOffer { adoptable, available, bounds: SmallVec::new() }
    }

    /// With the month's bounds on the chance of adopting ([`MonthOffer::surely_not`]), for a
    /// category of base hazard `hazard` in a month of election factor `e`.
    fn with_bounds(mut self, hazard: f64, e: f64, p: &SimParams) -> Self {
        // The rate `hazard · size · (1 + ni · s_nb + ei · s_epci) · e` grows with the shares
        // (0 to 1) when its other factors are not negative, and so does its computed value
        // (rounding is monotonic): at shares of 1 (of 0 for a negative influence) it is the
        // highest.
        let most = 1.0 + p.neighbour_influence.max(0.0) + p.epci_influence.max(0.0);
        if hazard >= 0.0 && e >= 0.0 {
            let sizes = [SizeClass::Under500, SizeClass::From500To1999, SizeClass::From2000To3499, SizeClass::From3500To9999, SizeClass::Over10000];
            self.bounds = sizes.iter().map(|&c| size_factor(c)).map(|size| (size, chance_of_adopting(hazard, size, most, e))).collect();
        }
        self
    }

    /// Whether a commune of size factor `size` drawing `u` surely does not adopt this month:
    /// `u` is at least the highest chance it could have ([`MonthOffer::bounds`]). `false` when
    /// unsure.
    fn surely_not(&self, u: f64, size: f64) -> bool {
        self.bounds.iter().find(|(s, _)| s.to_bits() == size.to_bits()).is_some_and(|&(_, bound)| u >= bound)
    }
}

/// A commune's chance of adopting in a month (0 to 1): `1 − exp(−rate)` at the rate
/// `hazard · size · pull · e`, `pull` being `1 + ni · s_nb + ei · s_epci` (the shares of its
/// neighbours and EPCI members running something, weighted by their influences). The one
/// formula of both the draw ([`CatRun::maybe_adopt`]) and its bound ([`MonthOffer::with_bounds`]).
fn chance_of_adopting(hazard: f64, size: f64, pull: f64, e: f64) -> f64 {
    1.0 - (-(hazard * size * pull * e)).exp()
}

/// One category's simulation.
struct CatRun<'w, 'a> {
    w: &'w World<'a>,
    category: &'a Slug,
    products: Vec<&'w SimProduct<'a>>,
    hazard: f64,
    share0: f64,
    rng: ChaCha8Rng,
    current: Vec<Option<Cur>>,
    /// Communes of each EPCI running something in the category.
    epci_with: Vec<usize>,
    adoptions: Vec<Adoption>,
    /// Feedback; `adoption_id` is the index in `adoptions` until ids are given.
    feedback: Vec<Feedback>,
}

fn months(start: NaiveDate, end: NaiveDate) -> Vec<NaiveDate> {
    let mut v = Vec::new();
    let mut d = start;
    while d <= end {
        v.push(d);
        d = match d.checked_add_months(Months::new(1)) {
            Some(x) => x,
            None => break,
        };
    }
    v
}

impl<'w, 'a> CatRun<'w, 'a> {
    fn new(w: &'w World<'a>, category: &'a Slug, kind: &str, products: Vec<&'w SimProduct<'a>>, hazard: f64) -> Self {
        CatRun {
            w,
            category,
            products,
            hazard,
            share0: initial_share(category.as_str(), kind),
            rng: ChaCha8Rng::seed_from_u64(w.p.seed ^ fnv(category.as_str())),
            current: vec![None; w.t.communes().len()],
            epci_with: vec![0; w.epci_size.len()],
            adoptions: Vec::new(),
            feedback: Vec::new(),
        }
    }

    /// Runs every month from `start` to `until`, calling `month_done` after each.
    fn run(mut self, until: NaiveDate, month_done: &mut dyn FnMut()) -> Self {
        let start = self.w.p.start.with_day(1).unwrap_or(self.w.p.start);
        for month in months(start, until) {
            let e = election_factor(month, self.w.p.election_boost);
            let offer = MonthOffer::of(&self.products, month).with_bounds(self.hazard, e, self.w.p);
            for i in 0..self.current.len() {
                match self.current[i] {
                    Some(cur) => self.follow(i, cur, month, e, &offer),
                    None => self.maybe_adopt(i, month == start, month, e, until, &offer),
                }
            }
            month_done();
        }
        self
    }

    fn set_current(&mut self, i: usize, cur: Option<Cur>) {
        let before = self.current[i].is_some();
        if let Some(e) = self.w.epci_of[i] {
            match (before, cur.is_some()) {
                (false, true) => self.epci_with[e] += 1,
                (true, false) => self.epci_with[e] -= 1,
                _ => {}
            }
        }
        self.current[i] = cur;
    }

    fn start_adoption(&mut self, i: usize, product: usize, slot: usize, since: NaiveDate) {
        let sp = self.products[product];
        let next_feedback = since.checked_add_months(Months::new(6)).unwrap_or(NaiveDate::MAX);
        if slot == PRE_CATALOGUE {
            let cur = Cur { adoption: None, product, slot, next_feedback: NaiveDate::MAX, reports: 0, reliability_sum: 0.0 };
            self.set_current(i, Some(cur));
            return;
        }
        self.adoptions.push(Adoption {
            id: 0,
            commune: self.w.t.commune(i as CommuneIdx).code,
            category: self.category.clone(),
            product: sp.product.id.clone(),
            generation: sp.generation_id(slot),
            since,
            until: None,
            contract_end: None,
            workstations: None,
            simulated: true,
        });
        let cur = Cur { adoption: Some(self.adoptions.len() - 1), product, slot, next_feedback, reports: 0, reliability_sum: 0.0 };
        self.set_current(i, Some(cur));
    }

    /// The generation to adopt of product `k` at `month`: the newest adoptable, or with
    /// probability `one_behind` the one before it; before the catalogue's first generation,
    /// [`PRE_CATALOGUE`]. `None` when none is adoptable.
    fn pick_slot(&mut self, k: usize, month: NaiveDate, newer_than: Option<usize>, offer: &MonthOffer) -> Option<usize> {
        let newer_than = newer_than.filter(|s| *s != PRE_CATALOGUE);
        let slots: Vec<usize> = offer.adoptable[k].iter().copied().filter(|&s| newer_than.is_none_or(|o| s > o)).collect();
        let Some(&newest) = slots.last() else {
            return (newer_than.is_none() && self.products[k].pre_catalogue(month)).then_some(PRE_CATALOGUE);
        };
        if slots.len() >= 2 && self.rng.random_bool(self.w.p.one_behind) { Some(slots[slots.len() - 2]) } else { Some(newest) }
    }

    fn maybe_adopt(&mut self, i: usize, first_month: bool, month: NaiveDate, e: f64, until: NaiveDate, offer: &MonthOffer) {
        let available = &offer.available;
        if available.is_empty() {
            return;
        }
        let w = self.w;
        let u: f64 = self.rng.random();
        let adopt = if first_month {
            u < self.share0
        } else if offer.surely_not(u, w.size[i]) {
            // Not even at the highest rate the neighbours and the EPCI could give: no need to
            // count them (the same draw, the same outcome).
            false
        } else {
            let nb = &w.nb[i];
            let s_nb = if nb.is_empty() { 0.0 } else { nb.iter().filter(|&&j| self.current[j as usize].is_some()).count() as f64 / nb.len() as f64 };
            let s_epci = w.epci_of[i].map_or(0.0, |k| self.epci_with[k] as f64 / w.epci_size[k].max(1) as f64);
            u < chance_of_adopting(self.hazard, w.size[i], 1.0 + w.p.neighbour_influence * s_nb + w.p.epci_influence * s_epci, e)
        };
        if !adopt {
            return;
        }
        // Product choice, weighted by imitation of neighbours and EPCI members.
        let peers = &w.peers[i];
        let mut counts = vec![0.0; self.products.len()];
        for &j in peers {
            if let Some(c) = self.current[j as usize] {
                counts[c.product] += 1.0;
            }
        }
        let peers_n = peers.len().max(1) as f64;
        let weights: Vec<f64> = available.iter().map(|&k| 1.0 + w.p.imitation * counts[k] / peers_n).collect();
        let mut x = self.rng.random::<f64>() * weights.iter().sum::<f64>();
        let mut chosen = available[available.len() - 1];
        for (&k, wt) in available.iter().zip(&weights) {
            if x < *wt {
                chosen = k;
                break;
            }
            x -= wt;
        }
        let Some(slot) = self.pick_slot(chosen, month, None, offer) else { return };
        // Spread the start over the month, deterministically.
        let since = month + Days::new(self.rng.random_range(0..28));
        if since <= until {
            self.start_adoption(i, chosen, slot, since);
        }
    }

    /// One month of a running adoption: its report when due, an upgrade near end of support,
    /// a switch away from a poorly rated product.
    fn follow(&mut self, i: usize, mut cur: Cur, month: NaiveDate, e: f64, offer: &MonthOffer) {
        if cur.reports < 6 && cur.next_feedback <= month {
            let f = self.report(i, &cur);
            cur.reports += 1;
            cur.reliability_sum += f64::from(f.reliability);
            cur.next_feedback = cur.next_feedback.checked_add_months(Months::new(12)).unwrap_or(NaiveDate::MAX);
            self.feedback.push(f);
            self.current[i] = Some(cur);
        }
        let p = self.w.p;
        let sp = self.products[cur.product];
        if sp.upgrade_from(cur.slot).is_some_and(|s| month >= s)
            && self.rng.random_bool((p.upgrade_rate * e).min(1.0))
            && let Some(slot) = self.pick_slot(cur.product, month, Some(cur.slot), offer).filter(|s| *s != PRE_CATALOGUE)
        {
            self.replace(i, cur, month, cur.product, slot);
            return;
        }
        if is_poor_rating(cur.reliability_sum / f64::from(cur.reports.max(1)), cur.reports) && self.rng.random_bool((p.switch_rate * e).min(1.0)) {
            let others: Vec<usize> = offer.available.iter().copied().filter(|&k| k != cur.product).collect();
            if !others.is_empty() {
                let k = others[self.rng.random_range(0..others.len())];
                if let Some(slot) = self.pick_slot(k, month, None, offer) {
                    self.replace(i, cur, month, k, slot);
                }
            }
        }
    }

    fn replace(&mut self, i: usize, cur: Cur, month: NaiveDate, product: usize, slot: usize) {
        if let Some(k) = cur.adoption {
            self.adoptions[k].until = Some(month);
        }
        self.set_current(i, None);
        self.start_adoption(i, product, slot, month);
    }

    /// Draws the report due for commune `i`'s adoption `cur`, dated `cur.next_feedback`. Draws,
    /// in this order: incidents, reliability noise, support noise, one downtime per incident.
    fn report(&mut self, i: usize, cur: &Cur) -> Feedback {
        let (w, p) = (self.w, self.w.p);
        let sp = self.products[cur.product];
        let date = cur.next_feedback;
        let age = months_between(sp.dates[cur.slot], date).max(0) as f64;
        let same = w.peers[i].iter().filter(|&&j| self.current[j as usize].is_some_and(|c| c.product == cur.product && c.slot == cur.slot)).count();
        let help = p.neighbour_help * (1.0 - (-(same as f64) / p.help_scale).exp());
        let l = sp.quality[cur.slot] + sp.local[i] + help;
        let lambda = p.incident_base * (1.0 + p.teething * (-age / 9.0).exp()) * (-l).exp();
        let rng = &mut self.rng;
        let incidents = Poisson::new(lambda).map(|d| d.sample(rng) as u32).unwrap_or(0);
        let reliability = normal(rng, p.base_reliability + l - 0.45 * f64::from(incidents), 0.5).round().clamp(1.0, 5.0) as u8;
        let support = normal(rng, 3.8 + sp.local[i], 0.7).round().clamp(1.0, 5.0) as u8;
        let exp = Exp::new(1.0 / 3.0).ok();
        let downtime: f64 = (0..incidents).map(|_| exp.map_or(3.0, |x| x.sample(rng))).sum::<f64>() + 0.0; // an empty f64 sum is -0.0
        Feedback {
            id: 0,
            adoption_id: cur.adoption.unwrap_or(0) as u64,
            date,
            reliability,
            incidents,
            downtime_hours: (downtime * 10.0).round() / 10.0,
            support,
            comment: None,
            simulated: true,
        }
    }
}

/// Share of communes under 2,000 inhabitants equipped at the end of `run` (recorded or running
/// a generation older than the catalogue's).
fn website_share(w: &World, run: &CatRun) -> f64 {
    let small: Vec<usize> = (0..w.t.communes().len()).filter(|&i| w.t.commune(i as CommuneIdx).population < 2000).collect();
    small.iter().filter(|&&i| run.current[i].is_some()).count() as f64 / small.len().max(1) as f64
}

/// Finds the `site-web` base hazard that gives the target share at the end of 2013 (bisection
/// on the same random streams as the full run). Returns (hazard, share reached).
fn calibrate_website<'w, 'a>(w: &'w World<'a>, category: &'a Slug, kind: &str, products: &[&'w SimProduct<'a>], month_done: &mut dyn FnMut()) -> (f64, f64) {
    let until = calibration_end(w.p);
    let (mut lo, mut hi) = (0.0f64, 0.2f64);
    let mut best = (0.0, 0.0, f64::MAX);
    for _ in 0..CALIBRATION_RUNS {
        let mid = (lo + hi) / 2.0;
        let run = CatRun::new(w, category, kind, products.to_vec(), mid).run(until, month_done);
        let s = website_share(w, &run);
        if (s - w.p.website_target_2013).abs() < best.2 {
            best = (mid, s, (s - w.p.website_target_2013).abs());
        }
        if s < w.p.website_target_2013 { lo = mid } else { hi = mid }
    }
    (best.0, best.1)
}

/// Bisection steps of the `site-web` calibration.
const CALIBRATION_RUNS: usize = 24;

/// The last day the `site-web` calibration simulates (the end of 2013, or `end` before it).
fn calibration_end(p: &SimParams) -> NaiveDate {
    NaiveDate::from_ymd_opt(2013, 12, 31).unwrap_or(p.end).min(p.end)
}

/// Runs the whole simulation. Deterministic: the same territory, catalogue and parameters give
/// the same history. Adoption ids follow the categories' order, then creation order; feedback
/// ids follow (adoption, date).
pub fn simulate(t: &Territory, catalog: &Catalog, p: &SimParams) -> DemoHistory {
    simulate_with_progress(t, catalog, p, &mut |_, _| {})
}

/// [`simulate`], calling `progress(done, total)` with the months simulated so far over every
/// category (the `site-web` calibration's runs included), every 50 ms while they run (the
/// categories run in parallel, on every core), never backwards; the last call with
/// `done == total`. The history is the same as [`simulate`]'s.
pub fn simulate_with_progress(t: &Territory, catalog: &Catalog, p: &SimParams, progress: &mut dyn FnMut(u64, u64)) -> DemoHistory {
    let w = World::new(t, p);
    let mut simulated_dates = Vec::new();
    let sims: BTreeMap<&Slug, SimProduct> =
        catalog.products.iter().filter(|q| !q.component).map(|q| (&q.id, sim_product(&w, q, &mut simulated_dates))).collect();
    let start = p.start.with_day(1).unwrap_or(p.start);
    let per_run = |until: NaiveDate| months(start, until).len() as u64;
    let runs: Vec<(&crate::core::catalog::Category, Vec<&SimProduct>)> = catalog
        .categories
        .iter()
        .map(|cat| (cat, catalog.products_in(&cat.slug).filter_map(|q| sims.get(&q.id)).collect::<Vec<_>>()))
        .filter(|(_, products)| !products.is_empty())
        .collect();
    let total: u64 = runs
        .iter()
        .map(|(cat, _)| per_run(p.end) + if cat.slug.as_str() == "site-web" { CALIBRATION_RUNS as u64 * per_run(calibration_end(p)) } else { 0 })
        .sum();
    // The categories run on every core (each has its own random stream: the history does not
    // depend on which thread runs it, or when); the results are put together in catalogue order.
    type RunOut = (Vec<Adoption>, Vec<Feedback>, Option<(f64, f64)>);
    let done = AtomicU64::new(0);
    let (next, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let results: Vec<Mutex<Option<RunOut>>> = runs.iter().map(|_| Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, runs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((cat, products)) = runs.get(i) else { break };
                    let mut month_done = || {
                        done.fetch_add(1, Ordering::Relaxed);
                    };
                    let (hazard, website) = if cat.slug.as_str() == "site-web" {
                        let website = calibrate_website(&w, &cat.slug, &cat.kind, products, &mut month_done);
                        (website.0, Some(website))
                    } else {
                        (p.base_hazard, None)
                    };
                    let run = CatRun::new(&w, &cat.slug, &cat.kind, products.clone(), hazard).run(p.end, &mut month_done);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some((run.adoptions, run.feedback, website));
                    finished.fetch_add(1, Ordering::Release);
                }
            });
        }
        // This thread reports, every 50 ms, the months simulated so far (never backwards).
        let mut reported = 0;
        while finished.load(Ordering::Acquire) < runs.len() {
            let now = done.load(Ordering::Relaxed).min(total);
            if now > reported {
                reported = now;
                progress(now, total);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    let mut adoptions: Vec<Adoption> = Vec::new();
    let mut feedback: Vec<Feedback> = Vec::new();
    let mut website = (0.0, 0.0);
    for result in results {
        let Some((run_adoptions, run_feedback, run_website)) = result.into_inner().unwrap_or_else(|e| e.into_inner()) else { continue };
        website = run_website.unwrap_or(website);
        let offset = adoptions.len() as u64;
        feedback.extend(run_feedback.into_iter().map(|f| Feedback { adoption_id: f.adoption_id + offset + 1, ..f }));
        adoptions.extend(run_adoptions);
    }
    for (i, a) in adoptions.iter_mut().enumerate() {
        a.id = i as u64 + 1;
    }
    feedback.sort_by(|a, b| a.adoption_id.cmp(&b.adoption_id).then(a.date.cmp(&b.date)));
    for (i, f) in feedback.iter_mut().enumerate() {
        f.id = i as u64 + 1;
    }
    progress(total, total);
    DemoHistory { adoptions, feedback, website_hazard: website.0, website_share_2013: website.1, simulated_dates }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::seeds;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn progress_counts_every_month_and_ends_at_total() {
        let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
        let p = SimParams::new(7, d("2012-06-30"));
        let mut calls: Vec<(u64, u64)> = Vec::new();
        let h = simulate_with_progress(&t, &c, &p, &mut |done, total| calls.push((done, total)));
        let &(last_done, total) = calls.last().unwrap();
        assert_eq!(last_done, total);
        // Per category with products, its months; site-web's calibration adds 24 runs to 2012-06.
        let months_to = |end: NaiveDate| months(p.start.with_day(1).unwrap(), end).len() as u64;
        let categories = c.categories.iter().filter(|k| c.products_in(&k.slug).any(|q| !q.component)).count() as u64;
        assert_eq!(total, categories * months_to(p.end) + 24 * months_to(p.end));
        // At most one call per month, then the final one; never backwards, the total never
        // changes.
        assert!(calls.len() as u64 <= total + 1, "{} calls", calls.len());
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1));
        // The history is the one `simulate` gives.
        assert_eq!(h.adoptions, simulate(&t, &c, &p).adoptions);
    }

    #[test]
    fn a_draw_above_the_months_bound_never_adopts_whatever_the_neighbours() {
        let p = SimParams::new(2026, d("2026-11-29"));
        let offer = MonthOffer { adoptable: Vec::new(), available: Vec::new(), bounds: SmallVec::new() }.with_bounds(0.05, 2.0, &p);
        assert_eq!(offer.bounds.len(), 5);
        for &(size, bound) in &offer.bounds {
            // The chance `maybe_adopt` computes, at every share of adopting neighbours and EPCI
            // members: never above the bound, and the bound at shares of 1.
            let chance = |s_nb: f64, s_epci: f64| 1.0 - (-(0.05 * size * (1.0 + p.neighbour_influence * s_nb + p.epci_influence * s_epci) * 2.0)).exp();
            for s_nb in (0..=12).map(|k| f64::from(k) / 12.0) {
                for s_epci in (0..=7).map(|k| f64::from(k) / 7.0) {
                    assert!(chance(s_nb, s_epci) <= bound, "size {size}: {s_nb} {s_epci}");
                }
            }
            assert_eq!(chance(1.0, 1.0), bound);
            // At the bound, surely not; just below it, unsure (the neighbours are counted).
            assert!(offer.surely_not(bound, size));
            assert!(!offer.surely_not(bound - f64::EPSILON, size));
        }
        // 0.6 for a commune under 500 inhabitants: 1 − exp(−0.05 · 0.6 · 5.5 · 2).
        assert_eq!(offer.bounds[0], (0.6, 1.0 - (-(0.05f64 * 0.6 * 5.5 * 2.0)).exp()));
        // A size the month has no bound for, or no bounds at all (a negative hazard): unsure.
        assert!(!offer.surely_not(0.99, 0.7));
        let unbounded = MonthOffer { adoptable: Vec::new(), available: Vec::new(), bounds: SmallVec::new() }.with_bounds(-0.05, 2.0, &p);
        assert!(unbounded.bounds.is_empty() && !unbounded.surely_not(0.99, 0.6));
    }

    #[test]
    fn the_breton_demo_history_of_seed_2026_is_the_one_recorded() {
        // The history every Breton figure and recorded answer is computed on. Working out each
        // month's offer once a month ([`MonthOffer`]) rather than once per commune and month
        // left it the same: these figures are those of the code before it (2026-12-01), and at
        // national scale too the same 987,307 adoptions and 4,235,402 feedback records came out,
        // 827,776,618 bytes of JSON with the same digest before and after.
        let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
        let h = simulate(&t, &c, &SimParams::new(2026, d("2026-11-29")));
        let json = serde_json::to_string(&(&h.adoptions, &h.feedback)).unwrap();
        assert_eq!((h.adoptions.len(), h.feedback.len(), json.len(), fnv(&json)), (36_610, 160_439, 30_740_232, 237_260_344_418_758_069));
    }

    #[test]
    fn deterministic_labelled_and_calibrated() {
        let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
        let p = SimParams::new(7, d("2016-06-30"));
        let a = simulate(&t, &c, &p);
        let b = simulate(&t, &c, &p);
        assert_eq!(a.adoptions, b.adoptions);
        assert_eq!(a.feedback, b.feedback);
        assert_eq!(a.simulated_dates, b.simulated_dates);
        let other = simulate(&t, &c, &SimParams::new(8, d("2016-06-30")));
        assert_ne!(a.adoptions, other.adoptions, "another seed gives another history");
        assert!(a.adoptions.iter().all(|x| x.simulated) && a.feedback.iter().all(|f| f.simulated));
        // M@rsoin: about 49 % of communes under 2,000 inhabitants had a website in 2013.
        assert!((a.website_share_2013 - 0.49).abs() < 0.02, "{}", a.website_share_2013);
        // Every product's availability is made up (the sources never give it); a generation's
        // date only where the sources give none: i-Parapheur's generations are dated by their
        // manuals, Office's by endoflife.date; LibreOffice's line and the wired access
        // technologies are not.
        let made_up = |p: &str| a.simulated_dates.iter().filter(|s| s.product.as_str() == p && s.generation.is_some()).count();
        assert_eq!([made_up("i-parapheur"), made_up("office"), made_up("libreoffice"), made_up("acces-internet-filaire")], [0, 0, 1, 3]);
        assert_eq!(a.simulated_dates.iter().filter(|s| s.generation.is_none()).count(), c.products.iter().filter(|p| !p.component).count());
        assert!(a.simulated_dates.iter().all(|s| s.date >= p.start && s.date < d("2013-01-01") || s.generation.is_some()));
        let available: HashMap<(&str, Option<&str>), NaiveDate> =
            a.simulated_dates.iter().map(|s| ((s.product.as_str(), s.generation.as_ref().map(|g| g.as_str())), s.date)).collect();
        // Every adoption names a known product serving its category, and a known generation
        // available by its start date when the product has generations.
        for x in &a.adoptions {
            let prod = c.product(&x.product).unwrap();
            assert!(prod.categories.contains(&x.category));
            let key = (x.product.as_str(), x.generation.as_ref().map(|g| g.as_str()));
            assert!(available.get(&key).is_none_or(|d| *d <= x.since), "{x:?}");
            if let Some(g) = &x.generation {
                let g = prod.generation(g).unwrap();
                assert!(g.released.is_none_or(|r| r <= x.since), "{x:?}");
            } else {
                assert!(prod.generations.is_empty());
            }
            assert!(x.until.is_none_or(|u| u >= x.since) && x.since <= p.end);
        }
        // Feedback points at existing adoptions, after their start, ratings in range.
        let by_id: HashMap<u64, &Adoption> = a.adoptions.iter().map(|x| (x.id, x)).collect();
        for f in &a.feedback {
            let x = by_id[&f.adoption_id];
            assert!(f.date >= x.since && (1..=5).contains(&f.reliability) && (1..=5).contains(&f.support));
        }
    }

    /// First reports on generations adopted in their first 3 months carry more incidents than
    /// on generations adopted past 3 years (the teething curve, the same for every product).
    #[test]
    fn young_generations_meet_more_incidents() {
        let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
        let h = simulate(&t, &c, &SimParams::new(2026, d("2026-11-29")));
        let by_id: HashMap<u64, &Adoption> = h.adoptions.iter().map(|x| (x.id, x)).collect();
        let (mut young, mut old) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for f in &h.feedback {
            if !seen.insert(f.adoption_id) {
                continue; // first report only
            }
            let a = by_id[&f.adoption_id];
            let Some(g) = a.generation.as_ref().and_then(|g| c.product(&a.product).ok()?.generation(g)) else {
                continue;
            };
            match g.age_months(a.since) {
                Some(m) if m < 3 => young.push(f64::from(f.incidents)),
                Some(m) if m > 36 => old.push(f64::from(f.incidents)),
                _ => {}
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(young.len() > 100 && old.len() > 100, "{} {}", young.len(), old.len());
        // Model: 0.6 · (1 + 2 e^(-age/9)) · E[e^-L], age 6-9 months at the first report: about
        // twice as many as past 3 years.
        assert!(mean(&young) > 1.5 * mean(&old), "{} {}", mean(&young), mean(&old));
        assert!(h.adoptions.iter().any(|a| a.until.is_some()), "some upgrades or switches happen");
    }

    /// Local support makes a product's reports differ between départements; switched off, they
    /// differ by noise only.
    #[test]
    fn local_support_varies_by_territory_and_switches_off() {
        let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
        let spread = |p: &SimParams| {
            let h = simulate(&t, &c, p);
            let by_id: HashMap<u64, &Adoption> = h.adoptions.iter().map(|x| (x.id, x)).collect();
            let mut sums: HashMap<(&str, String), (f64, f64)> = HashMap::new();
            for f in &h.feedback {
                let a = by_id[&f.adoption_id];
                let dept = t.commune(t.idx_of(&a.commune).unwrap()).department.clone();
                let e = sums.entry((a.product.as_str(), dept)).or_default();
                e.0 += f64::from(f.support);
                e.1 += 1.0;
            }
            let means: Vec<f64> = sums.values().filter(|(_, n)| *n >= 200.0).map(|(s, n)| s / n).collect();
            let m = means.iter().sum::<f64>() / means.len() as f64;
            (means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / means.len() as f64).sqrt()
        };
        let on = spread(&SimParams::new(11, d("2026-11-29")));
        let off = spread(&SimParams::new(11, d("2026-11-29")).without_place());
        // Model: département effects N(0, 0.35) plus EPCI effects averaging out; noise alone
        // over 200 reports or more is under 0.05.
        assert!(on > 0.2 && off < 0.08, "spread of mean support by (product, département): {on} with, {off} without");
    }

    #[test]
    fn elections_are_moments_of_change() {
        assert_eq!(election_factor(d("2014-03-01"), 1.0), 2.0);
        assert_eq!(election_factor(d("2015-02-01"), 1.0), 2.0);
        assert_eq!(election_factor(d("2015-03-01"), 1.0), 1.0);
        assert_eq!(election_factor(d("2020-06-01"), 0.0), 1.0);
        let mut p = SimParams::new(1, d("2026-01-01"));
        p.set("election_boost", "0").unwrap();
        assert_eq!(p.election_boost, 0.0);
        assert!(matches!(p.set("election_boost", "-1"), Err(Error::Invalid(_))));
        assert!(matches!(p.set("nope", "1"), Err(Error::Malformed(_))));
    }
}
