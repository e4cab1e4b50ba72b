//! What a recommendation is worth to a commune: a decision-quality evaluation on the simulated
//! history, against baselines.
//!
//! For each cut date `T`, every (commune, category) with a **decision due** at `T` (the needs of
//! the pooled purchases, [`need_of`] with a 12-month horizon: no product, support ended or
//! ending, an obligation not met, a contract ending, a poor rating) is a **case**. Each method
//! proposes generations from what was known at `T` only (adoptions started before `T`, feedback
//! dated before it), behind one **eligibility filter**: released by `T`, not left out by
//! [`exclusion`] (support ended or ending within the margin, phase-out, an obligation not met),
//! and not what the commune already runs.
//!
//! The **realised utility** of a generation for a case is the mean quality
//! ([`quality_of`] with penalties 0.25 per `ln(1 + incidents)` and 0.15 per `ln(1 + hours)`, on
//! the 1-5 scale) of the reports dated from `T` to `T + 36 months` on adoptions of that
//! generation started from `T` to `T + 24 months` by communes of the case's département (where
//! local support and the neighbours' help play), with at least 3 reports from 2 communes (else
//! unscored), minus a **migration cost** of 0.5 when its end of support falls within the
//! 60-month service life from `T`. A method's figures for a case: the utility of its top 1, its
//! **regret** (the best utility among the eligible generations, in hindsight, minus that), and,
//! against what the commune actually adopted in the 24 months, hit@1, hit@3 and NDCG@3. The
//! utility of what the commune actually chose is reported beside them.
//!
//! Methods are compared on the cases every method can score. Intervals are 95 % percentile
//! bootstrap intervals (1,000 resamples) clustered by generation: every case of the same seed,
//! cut, département and category shares the same generations' realised utilities, so these
//! groups are resampled whole.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, Months, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::core::catalog::Catalog;
use crate::core::domain::{InseeCode, Slug};
use crate::core::history::{AdoptionIndex, quality_of};
use crate::core::pooling::need_of;
use crate::core::recommend::{Ctx, Key, Params, exclusion, key_of, recommend};
use crate::core::territory::{CommuneIdx, Territory};

/// The methods compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// [`recommend`] with the given parameters.
    Recommender,
    /// Most run in the territory at `T`.
    GlobalPopularity,
    /// Most run in the commune's EPCI, then global popularity.
    EpciPopularity,
    /// Most run among the direct neighbours, then global popularity.
    NeighbourMajority,
    /// Newest released generations (undated ones last).
    Newest,
    /// The next eligible generation of the product the commune runs, else global popularity.
    SameProductNext,
    /// Bayesian average of every report in the territory, ranked on its lower bound, without
    /// the graph: `μ = (κ·μ0 + Σq) / (κ + n)`, bound `μ - z·sd/√(κ + n)` with the
    /// recommender's `prior_weight`, `rating_sd` and `z`.
    BayesianAverage,
    /// Item-kNN collaborative filter: a candidate's score is the sum of its cosine similarities
    /// (over the communes running both) with what the commune runs in the other categories.
    ItemKnn,
}

impl Method {
    /// All methods, recommender first.
    pub const ALL: [Method; 8] = [
        Method::Recommender,
        Method::GlobalPopularity,
        Method::EpciPopularity,
        Method::NeighbourMajority,
        Method::Newest,
        Method::SameProductNext,
        Method::BayesianAverage,
        Method::ItemKnn,
    ];

    /// Name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Recommender => "recommender",
            Method::GlobalPopularity => "global_popularity",
            Method::EpciPopularity => "epci_popularity",
            Method::NeighbourMajority => "neighbour_majority",
            Method::Newest => "newest",
            Method::SameProductNext => "same_product_next",
            Method::BayesianAverage => "bayesian_average",
            Method::ItemKnn => "item_knn",
        }
    }
}

/// Settings of the evaluation (the defaults are the ones the module doc states).
#[derive(Clone, Debug, Serialize)]
pub struct EvalSettings {
    /// Cut dates.
    pub cuts: Vec<NaiveDate>,
    /// Horizon of the needs that make a decision due, months. Default 12.
    pub need_horizon_months: u32,
    /// Adoptions started within this many months after `T` count. Default 24.
    pub adoption_window_months: u32,
    /// Reports dated up to this many months after `T` count. Default 36.
    pub report_window_months: u32,
    /// Service life over which an end of support costs a migration, months. Default 60.
    pub service_life_months: u32,
    /// Migration cost, quality points on the 1-5 scale, taken off a generation's realised
    /// utility (the measure; the recommender's own `migration_cost` parameter is separate).
    /// Default 0.5.
    pub migration_cost: f64,
    /// Fewest reports for a realised utility. Default 3.
    pub min_reports: usize,
    /// Fewest communes among them. Default 2.
    pub min_communes: usize,
    /// Bootstrap resamples. Default 1,000.
    pub resamples: usize,
}

impl EvalSettings {
    /// Checks the cuts against a history simulated from `start` to `until`: each cut must come
    /// after `start` and leave `report_window_months` of reports before `until`, and there must
    /// be at least one. Errors: `Invalid`, naming the first bad cut.
    pub fn validate(&self, start: NaiveDate, until: NaiveDate) -> crate::error::Result<()> {
        if self.cuts.is_empty() {
            return Err(crate::error::Error::Invalid("at least one cut date is needed".into()));
        }
        for &cut in &self.cuts {
            let reports_end = add_months(cut, self.report_window_months);
            if cut <= start || reports_end > until {
                return Err(crate::error::Error::Invalid(format!(
                    "cut {cut} must be after the simulation's start ({start}) and leave {} months of reports before {until} (the last cut possible is {})",
                    self.report_window_months,
                    until.checked_sub_months(Months::new(self.report_window_months)).unwrap_or(until)
                )));
            }
        }
        Ok(())
    }
}

impl Default for EvalSettings {
    fn default() -> Self {
        let d = |y, m| NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(NaiveDate::MIN);
        EvalSettings {
            cuts: vec![d(2015, 1), d(2017, 1), d(2019, 1), d(2021, 1), d(2023, 1)],
            need_horizon_months: 12,
            adoption_window_months: 24,
            report_window_months: 36,
            service_life_months: 60,
            migration_cost: 0.5,
            min_reports: 3,
            min_communes: 2,
            resamples: 1000,
        }
    }
}

/// One method's top picks for one case, and their realised utilities.
#[derive(Clone, Debug)]
pub struct Pick {
    /// Realised utility of its top 1, `None` when unscored.
    pub utility: Option<f64>,
    /// hit@1, hit@3, NDCG@3 against what the commune adopted (`None` when it adopted nothing).
    pub hits: Option<(f64, f64, f64)>,
}

/// One case: a decision due for a commune in a category at a cut.
#[derive(Clone, Debug)]
pub struct Case {
    /// The bootstrap cluster: (seed, cut, département, category).
    pub cluster: (u64, NaiveDate, String, Slug),
    /// Best realised utility among the eligible generations, `None` when none is scored.
    pub best: Option<f64>,
    /// Realised utility of what the commune adopted first in the window, if scored.
    pub chosen: Option<f64>,
    /// Per method, in [`Method::ALL`] order.
    pub picks: Vec<Pick>,
}

/// A mean with its 95 % bootstrap interval.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct Estimate {
    /// Mean over the cases.
    pub mean: f64,
    /// 2.5 % percentile of the bootstrap means.
    pub low: f64,
    /// 97.5 % percentile.
    pub high: f64,
}

/// One method's figures over a set of cases.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MethodFigures {
    /// The method.
    pub method: Method,
    /// Mean realised utility of its top 1 on the common cases (1-5 scale, minus migration).
    pub utility: Estimate,
    /// Mean regret on the common cases (0 = always the best in hindsight).
    pub regret: Estimate,
    /// Share of all cases where its top 1 is scored.
    pub scored_share: f64,
    /// Share of cases with an adoption in the window whose first pick is one adopted.
    pub hit_at_1: f64,
    /// The same within the top 3.
    pub hit_at_3: f64,
    /// Mean NDCG@3, binary relevance.
    pub ndcg_at_3: f64,
}

/// The figures of one group of cases (a seed and cut, a cut over seeds, or everything).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Cases (decisions due).
    pub cases: usize,
    /// Cases every method can score: where the means are taken.
    pub common_cases: usize,
    /// Mean realised utility of what the communes actually chose, on the cases where it is
    /// scored (`None` when none is).
    pub chosen_utility: Option<f64>,
    /// Cases where the chosen generation is scored.
    pub chosen_cases: usize,
    /// Per method.
    pub methods: Vec<MethodFigures>,
    /// The baseline with the lowest mean regret.
    pub best_baseline: Method,
    /// Recommender's regret minus the best baseline's, paired on the common cases, with its
    /// interval: below zero with `high < 0` is a win.
    pub regret_difference: Estimate,
}

/// Counts of what runs where at a cut, for the baselines.
struct Running {
    /// Category → key → communes running it.
    global: HashMap<Slug, HashMap<Key, usize>>,
    /// Commune index → keys it runs, per category.
    by_commune: Vec<HashMap<Slug, Vec<Key>>>,
    /// (category, key) → bitset of the communes running it.
    users: HashMap<(Slug, Key), Vec<u64>>,
}

impl Running {
    fn new(t: &Territory, catalog: &Catalog, h: &AdoptionIndex, cut: NaiveDate) -> Self {
        let n = t.communes().len();
        let words = n.div_ceil(64);
        let mut r = Running { global: HashMap::new(), by_commune: vec![HashMap::new(); n], users: HashMap::new() };
        for a in h.adoptions().filter(|a| a.since < cut && a.active_on(cut)) {
            let Some(i) = t.idx_of(&a.commune) else { continue };
            let key = key_of(catalog, a);
            *r.global.entry(a.category.clone()).or_default().entry(key.clone()).or_default() += 1;
            r.by_commune[i as usize].entry(a.category.clone()).or_default().push(key.clone());
            let bits = r.users.entry((a.category.clone(), key)).or_insert_with(|| vec![0; words]);
            bits[i as usize / 64] |= 1 << (i as usize % 64);
        }
        r
    }

    fn count_among(&self, cat: &Slug, members: impl Iterator<Item = CommuneIdx>) -> HashMap<Key, usize> {
        let mut m: HashMap<Key, usize> = HashMap::new();
        for j in members {
            for k in self.by_commune[j as usize].get(cat).into_iter().flatten() {
                *m.entry(k.clone()).or_default() += 1;
            }
        }
        m
    }
}

/// Sorts `keys` by `score` (primary, then secondary) descending, ties by key.
fn by_score(keys: &[Key], score: impl Fn(&Key) -> (f64, f64)) -> Vec<Key> {
    let mut v: Vec<((f64, f64), &Key)> = keys.iter().map(|k| (score(k), k)).collect();
    v.sort_by(|a, b| b.0.0.total_cmp(&a.0.0).then(b.0.1.total_cmp(&a.0.1)).then(a.1.cmp(b.1)));
    v.into_iter().map(|(_, k)| k.clone()).collect()
}

/// What one cut offers the methods and the scoring.
struct CutData<'a> {
    ctx: Ctx<'a>,
    running: Running,
    /// Eligible keys per category (before removing what the commune runs), sorted.
    eligible: HashMap<Slug, Vec<Key>>,
    /// Realised utility per (département, category, key).
    utility: HashMap<(String, Slug, Key), f64>,
    /// Keys adopted in the window per (commune, category), first adopted first.
    adopted: HashMap<(InseeCode, Slug), Vec<Key>>,
    /// Bayesian lower bound per (category, key), from every report before the cut.
    bayes: HashMap<(Slug, Key), f64>,
    /// Release date of each key with one.
    released: HashMap<Key, NaiveDate>,
}

fn add_months(d: NaiveDate, m: u32) -> NaiveDate {
    d.checked_add_months(Months::new(m)).unwrap_or(NaiveDate::MAX)
}

impl<'a> CutData<'a> {
    fn new(t: &'a Territory, catalog: &'a Catalog, h: &'a AdoptionIndex, cut: NaiveDate, s: &EvalSettings, params: &Params) -> Self {
        let ctx = Ctx::new(t, catalog, h, cut);
        let mut eligible: HashMap<Slug, Vec<Key>> = HashMap::new();
        let mut released = HashMap::new();
        for cat in &catalog.categories {
            let mut keys = Vec::new();
            for p in catalog.products_in(&cat.slug).filter(|p| !p.component) {
                if p.generations.is_empty() {
                    keys.push((p.id.clone(), None));
                }
                for g in p.released_by(cut) {
                    if exclusion(&ctx, &cat.slug, g, None, params).is_none() {
                        let key = (p.id.clone(), Some(g.id.clone()));
                        if let Some(r) = g.released {
                            released.insert(key.clone(), r);
                        }
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            eligible.insert(cat.slug.clone(), keys);
        }
        let (utility, adopted) = realised(t, catalog, h, cut, s);
        let bayes = bayes_bounds(catalog, h, cut, params);
        CutData { running: Running::new(t, catalog, h, cut), ctx, eligible, utility, adopted, bayes, released }
    }
}

/// Realised utilities per (département, category, key), and what each commune adopted in the
/// window.
#[allow(clippy::type_complexity)]
fn realised(
    t: &Territory,
    catalog: &Catalog,
    h: &AdoptionIndex,
    cut: NaiveDate,
    s: &EvalSettings,
) -> (HashMap<(String, Slug, Key), f64>, HashMap<(InseeCode, Slug), Vec<Key>>) {
    let (window_end, reports_end) = (add_months(cut, s.adoption_window_months), add_months(cut, s.report_window_months));
    let life_end = add_months(cut, s.service_life_months);
    // (dept, category, key) → (sum of quality, reports, communes).
    let mut sums: HashMap<(String, Slug, Key), (f64, usize, HashSet<InseeCode>)> = HashMap::new();
    let mut adopted: HashMap<(InseeCode, Slug), Vec<(NaiveDate, Key)>> = HashMap::new();
    for a in h.adoptions().filter(|a| a.since >= cut && a.since < window_end) {
        let Some(i) = t.idx_of(&a.commune) else { continue };
        let key = key_of(catalog, a);
        adopted.entry((a.commune, a.category.clone())).or_default().push((a.since, key.clone()));
        let dept = t.commune(i).department.clone();
        for f in h.reports(a.id).iter().filter(|f| f.date >= cut && f.date <= reports_end) {
            let e = sums.entry((dept.clone(), a.category.clone(), key.clone())).or_default();
            e.0 += quality_of(&f, 0.25, 0.15);
            e.1 += 1;
            e.2.insert(a.commune);
        }
    }
    let utility = sums
        .into_iter()
        .filter(|(_, (_, n, communes))| *n >= s.min_reports && communes.len() >= s.min_communes)
        .map(|(k, (sum, n, _))| {
            let eos = catalog.product(&k.2.0).ok().and_then(|p| k.2.1.as_ref().and_then(|g| p.generation(g))).and_then(|g| g.end_of_support);
            let cost = if eos.is_some_and(|e| e < life_end) { s.migration_cost } else { 0.0 };
            (k, sum / n as f64 - cost)
        })
        .collect();
    let adopted = adopted
        .into_iter()
        .map(|(k, mut v)| {
            v.sort();
            let mut keys: Vec<Key> = Vec::new();
            for (_, key) in v {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            (k, keys)
        })
        .collect();
    (utility, adopted)
}

/// The Bayesian-average lower bound of every (category, key) with reports before `cut`.
fn bayes_bounds(catalog: &Catalog, h: &AdoptionIndex, cut: NaiveDate, p: &Params) -> HashMap<(Slug, Key), f64> {
    let mut sums: HashMap<(Slug, Key), (f64, f64)> = HashMap::new();
    let mut cat_sums: HashMap<Slug, (f64, f64)> = HashMap::new();
    for a in h.adoptions().filter(|a| a.since < cut) {
        for f in h.reports(a.id).iter().filter(|f| f.date < cut) {
            let q = quality_of(&f, p.incident_penalty, p.downtime_penalty);
            for e in [sums.entry((a.category.clone(), key_of(catalog, a))).or_default(), cat_sums.entry(a.category.clone()).or_default()] {
                e.0 += q;
                e.1 += 1.0;
            }
        }
    }
    let mut out = HashMap::new();
    for ((cat, key), (s, n)) in sums {
        let (cs, cn) = cat_sums.get(&cat).copied().unwrap_or((0.0, 0.0));
        let mu0 = if cn > 0.0 { cs / cn } else { 3.0 };
        let mu = (p.prior_weight * mu0 + s) / (p.prior_weight + n);
        out.insert((cat, key), mu - p.z * p.rating_sd / (p.prior_weight + n).sqrt());
    }
    out
}

/// Cosine similarity of two bitsets of communes.
fn cosine(a: &[u64], b: &[u64]) -> f64 {
    let ones = |x: &[u64]| x.iter().map(|w| w.count_ones()).sum::<u32>() as f64;
    let both: u32 = a.iter().zip(b).map(|(x, y)| (x & y).count_ones()).sum();
    let (na, nb) = (ones(a), ones(b));
    if na == 0.0 || nb == 0.0 { 0.0 } else { f64::from(both) / (na * nb).sqrt() }
}

/// The ranked candidates of `method` for commune `idx` in `cat` (eligible, not run).
fn ranked(method: Method, data: &CutData, idx: CommuneIdx, cat: &Slug, candidates: &[Key], params: &Params) -> Vec<Key> {
    let t = data.ctx.territory;
    let global = data.running.global.get(cat);
    let popularity = |k: &Key| global.and_then(|m| m.get(k)).copied().unwrap_or(0) as f64;
    let among = |m: HashMap<Key, usize>| by_score(candidates, |k| (m.get(k).copied().unwrap_or(0) as f64, popularity(k)));
    match method {
        Method::Recommender => {
            let mut p = *params;
            p.limit = 3;
            let code = t.commune(idx).code;
            let items = recommend(&data.ctx, &code, cat, &p).map(|a| a.items).unwrap_or_default();
            items.into_iter().map(|i| (i.product, i.generation)).filter(|k| candidates.contains(k)).collect()
        }
        Method::GlobalPopularity => by_score(candidates, |k| (popularity(k), 0.0)),
        Method::EpciPopularity => {
            let members = t.commune(idx).epci.map(|s| t.members(&s).to_vec()).unwrap_or_default();
            among(data.running.count_among(cat, members.into_iter().filter(|&j| j != idx)))
        }
        Method::NeighbourMajority => among(data.running.count_among(cat, t.neighbours(idx).into_iter().map(|(j, _)| j))),
        Method::Newest => by_score(candidates, |k| (data.released.get(k).map_or(f64::NEG_INFINITY, |d| f64::from(d.num_days_from_ce())), 0.0)),
        Method::SameProductNext => {
            let runs: Vec<&Key> = data.running.by_commune[idx as usize].get(cat).into_iter().flatten().collect();
            let order = |k: &Key| {
                let p = data.ctx.catalog.product(&k.0).ok()?;
                k.1.as_ref().and_then(|g| p.generation(g)).map(|g| g.order)
            };
            // A newer generation of a product it runs, the nearest first (minus its order).
            let next = |k: &Key| {
                runs.iter()
                    .filter(|r| r.0 == k.0)
                    .filter_map(|r| Some((order(r)?, order(k)?)))
                    .filter(|(o, ko)| ko > o)
                    .map(|(_, ko)| -f64::from(ko))
                    .fold(f64::NEG_INFINITY, f64::max)
            };
            by_score(candidates, |k| (next(k), popularity(k)))
        }
        Method::BayesianAverage => {
            let prior = data.bayes.iter().filter(|((c, _), _)| c == cat).map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::min);
            by_score(candidates, |k| (data.bayes.get(&(cat.clone(), k.clone())).copied().unwrap_or(if prior.is_finite() { prior - 1.0 } else { 0.0 }), 0.0))
        }
        Method::ItemKnn => {
            let mine: Vec<&Vec<u64>> = data.running.by_commune[idx as usize]
                .iter()
                .filter(|(c, _)| *c != cat)
                .flat_map(|(c, keys)| keys.iter().filter_map(|k| data.running.users.get(&(c.clone(), k.clone()))))
                .collect();
            by_score(candidates, |k| {
                (data.running.users.get(&(cat.clone(), k.clone())).map_or(0.0, |u| mine.iter().map(|m| cosine(u, m)).sum::<f64>()), popularity(k))
            })
        }
    }
}

/// hit@1, hit@3 and NDCG@3 (binary relevance) of `list` against `targets`.
fn hits(list: &[Key], targets: &[Key]) -> (f64, f64, f64) {
    let h: Vec<bool> = list.iter().take(3).map(|k| targets.contains(k)).collect();
    let dcg: f64 = h.iter().enumerate().filter(|(_, x)| **x).map(|(i, _)| 1.0 / ((i + 2) as f64).log2()).sum();
    let idcg: f64 = (0..targets.len().min(3)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    (f64::from(u8::from(h.first().copied().unwrap_or(false))), f64::from(u8::from(h.iter().any(|x| *x))), dcg / idcg)
}

/// The cases of one cut, scored for every method.
pub fn cut_cases(t: &Territory, catalog: &Catalog, h: &AdoptionIndex, seed: u64, cut: NaiveDate, s: &EvalSettings, params: &Params) -> Vec<Case> {
    let data = CutData::new(t, catalog, h, cut, s, params);
    let mut out = Vec::new();
    for idx in 0..t.communes().len() as CommuneIdx {
        let c = t.commune(idx);
        for cat in &catalog.categories {
            let Some(all) = data.eligible.get(&cat.slug).filter(|v| !v.is_empty()) else { continue };
            if need_of(&data.ctx, &c.code, &cat.slug, s.need_horizon_months).is_none() {
                continue;
            }
            let runs = data.running.by_commune[idx as usize].get(&cat.slug);
            let allowed = |k: &Key| {
                let g = catalog.product(&k.0).ok().and_then(|p| k.1.as_ref().and_then(|g| p.generation(g)));
                g.is_none_or(|g| exclusion(&data.ctx, &cat.slug, g, Some(c.population), params).is_none())
            };
            let candidates: Vec<Key> = all.iter().filter(|k| runs.is_none_or(|r| !r.contains(k)) && allowed(k)).cloned().collect();
            let u = |k: &Key| data.utility.get(&(c.department.clone(), cat.slug.clone(), k.clone())).copied();
            let best = candidates.iter().filter_map(u).fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            let targets = data.adopted.get(&(c.code, cat.slug.clone()));
            let picks = Method::ALL
                .iter()
                .map(|&m| {
                    let list = ranked(m, &data, idx, &cat.slug, &candidates, params);
                    Pick { utility: list.first().and_then(u), hits: targets.map(|tg| hits(&list, tg)) }
                })
                .collect();
            out.push(Case { cluster: (seed, cut, c.department.clone(), cat.slug.clone()), best, chosen: targets.and_then(|tg| tg.first()).and_then(u), picks });
        }
    }
    out
}

/// Every cut's cases for one seed's history.
pub fn evaluate(t: &Territory, catalog: &Catalog, h: &AdoptionIndex, seed: u64, s: &EvalSettings, params: &Params) -> Vec<Case> {
    s.cuts.iter().flat_map(|&cut| cut_cases(t, catalog, h, seed, cut, s, params)).collect()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Mean of `values` (one per common case) with its cluster bootstrap interval.
fn estimate(values: &[f64], clusters: &[usize], n_clusters: usize, resamples: usize, rng: &mut ChaCha8Rng) -> Estimate {
    let mut sums = vec![(0.0, 0usize); n_clusters];
    for (v, c) in values.iter().zip(clusters) {
        sums[*c].0 += v;
        sums[*c].1 += 1;
    }
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let mut means = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let (mut s, mut n) = (0.0, 0usize);
        for _ in 0..n_clusters {
            let (cs, cn) = sums[rng.random_range(0..n_clusters)];
            s += cs;
            n += cn;
        }
        if n > 0 {
            means.push(s / n as f64);
        }
    }
    means.sort_by(f64::total_cmp);
    Estimate { mean, low: percentile(&means, 0.025), high: percentile(&means, 0.975) }
}

/// The bootstrap cluster of each case (numbered from 0 in order of appearance) and the number
/// of clusters (at least 1).
fn cluster_indexes(cases: &[&Case]) -> (Vec<usize>, usize) {
    let mut ids: HashMap<&(u64, NaiveDate, String, Slug), usize> = HashMap::new();
    let clusters = cases
        .iter()
        .map(|c| {
            let n = ids.len();
            *ids.entry(&c.cluster).or_insert(n)
        })
        .collect();
    (clusters, ids.len().max(1))
}

/// The recommender's regret minus `other`'s, paired on the cases where both are scored, with
/// its clustered bootstrap interval (seeded).
pub fn regret_difference(cases: &[Case], other: Method, resamples: usize) -> Estimate {
    let k = Method::ALL.iter().position(|m| *m == other).unwrap_or(0);
    let both: Vec<&Case> = cases.iter().filter(|c| c.best.is_some() && c.picks[0].utility.is_some() && c.picks[k].utility.is_some()).collect();
    let (clusters, n_clusters) = cluster_indexes(&both);
    let diff: Vec<f64> = both.iter().map(|c| c.picks[k].utility.unwrap_or(0.0) - c.picks[0].utility.unwrap_or(0.0)).collect();
    estimate(&diff, &clusters, n_clusters, resamples, &mut ChaCha8Rng::seed_from_u64(0x0b00_7577))
}

/// The figures of a group of cases. Deterministic: the bootstrap is seeded.
pub fn figures(cases: &[Case], resamples: usize) -> Figures {
    let m = Method::ALL.len();
    let common: Vec<&Case> = cases.iter().filter(|c| c.best.is_some() && c.picks.iter().all(|p| p.utility.is_some())).collect();
    let (clusters, n_clusters) = cluster_indexes(&common);
    let utility = |c: &Case, k: usize| c.picks[k].utility.unwrap_or(0.0);
    let regret = |c: &Case, k: usize| c.best.unwrap_or(0.0) - utility(c, k);
    let mut rng = ChaCha8Rng::seed_from_u64(0x0b00_7577);
    let mut methods = Vec::new();
    for (k, &method) in Method::ALL.iter().enumerate() {
        let u: Vec<f64> = common.iter().map(|c| utility(c, k)).collect();
        let r: Vec<f64> = common.iter().map(|c| regret(c, k)).collect();
        let with_target: Vec<(f64, f64, f64)> = cases.iter().filter_map(|c| c.picks[k].hits).collect();
        let nt = with_target.len().max(1) as f64;
        methods.push(MethodFigures {
            method,
            utility: estimate(&u, &clusters, n_clusters, resamples, &mut rng),
            regret: estimate(&r, &clusters, n_clusters, resamples, &mut rng),
            scored_share: cases.iter().filter(|c| c.best.is_some() && c.picks[k].utility.is_some()).count() as f64 / cases.len().max(1) as f64,
            hit_at_1: with_target.iter().map(|h| h.0).sum::<f64>() / nt,
            hit_at_3: with_target.iter().map(|h| h.1).sum::<f64>() / nt,
            ndcg_at_3: with_target.iter().map(|h| h.2).sum::<f64>() / nt,
        });
    }
    let best = (1..m).min_by(|&a, &b| methods[a].regret.mean.total_cmp(&methods[b].regret.mean)).unwrap_or(1);
    let diff: Vec<f64> = common.iter().map(|c| regret(c, 0) - regret(c, best)).collect();
    let chosen: Vec<f64> = cases.iter().filter_map(|c| c.chosen).collect();
    Figures {
        cases: cases.len(),
        common_cases: common.len(),
        chosen_utility: (!chosen.is_empty()).then(|| chosen.iter().sum::<f64>() / chosen.len() as f64),
        chosen_cases: chosen.len(),
        methods,
        best_baseline: Method::ALL[best],
        regret_difference: estimate(&diff, &clusters, n_clusters, resamples, &mut rng),
    }
}

/// Figures of one seed's cases per cut and in total.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Per cut.
    pub by_cut: BTreeMap<NaiveDate, Figures>,
    /// All cuts together.
    pub all: Figures,
}

/// Groups `cases` (of several seeds) into per-seed reports, per-cut figures across seeds, and
/// the pooled figures.
pub fn report(cases: &[Case], resamples: usize) -> (Vec<SeedReport>, BTreeMap<NaiveDate, Figures>, Figures) {
    let mut seeds: BTreeMap<u64, Vec<Case>> = BTreeMap::new();
    let mut cuts: BTreeMap<NaiveDate, Vec<Case>> = BTreeMap::new();
    for c in cases {
        seeds.entry(c.cluster.0).or_default().push(c.clone());
        cuts.entry(c.cluster.1).or_default().push(c.clone());
    }
    let per_seed = seeds
        .into_iter()
        .map(|(seed, cs)| {
            let mut by_cut: BTreeMap<NaiveDate, Vec<Case>> = BTreeMap::new();
            for c in &cs {
                by_cut.entry(c.cluster.1).or_default().push(c.clone());
            }
            SeedReport { seed, by_cut: by_cut.into_iter().map(|(d, v)| (d, figures(&v, resamples))).collect(), all: figures(&cs, resamples) }
        })
        .collect();
    let by_cut = cuts.into_iter().map(|(d, v)| (d, figures(&v, resamples))).collect();
    (per_seed, by_cut, figures(cases, resamples))
}

/// A Markdown table of figures: one row per method.
pub fn table(f: &Figures) -> String {
    let mut s = String::from(
        "| method | utility (95 % CI) | regret (95 % CI) | scored | hit@1 | hit@3 | NDCG@3 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for m in &f.methods {
        s.push_str(&format!(
            "| {} | {:.3} ({:.3} to {:.3}) | {:.3} ({:.3} to {:.3}) | {:.2} | {:.3} | {:.3} | {:.3} |\n",
            m.method.name(),
            m.utility.mean,
            m.utility.low,
            m.utility.high,
            m.regret.mean,
            m.regret.low,
            m.regret.high,
            m.scored_share,
            m.hit_at_1,
            m.hit_at_3,
            m.ndcg_at_3
        ));
    }
    let d = f.regret_difference;
    s.push_str(&format!(
        "\n{} cases, {} scored by every method; what the communes chose: utility {} over {} cases. Recommender minus best baseline ({}) regret: {:.3} ({:.3} to {:.3}).\n",
        f.cases,
        f.common_cases,
        f.chosen_utility.map_or("-".into(), |u| format!("{u:.3}")),
        f.chosen_cases,
        f.best_baseline.name(),
        d.mean,
        d.low,
        d.high
    ));
    s
}

/// The figures of one simulation setting: per seed, per cut across seeds, and pooled.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Variant {
    /// What was simulated (`"every mechanism"` or the mechanisms switched off).
    pub simulation: String,
    /// Per seed (per cut and all cuts).
    pub by_seed: Vec<SeedReport>,
    /// Per cut, all seeds together.
    pub by_cut: BTreeMap<NaiveDate, Figures>,
    /// Everything together.
    pub pooled: Figures,
}

/// What `voisinage eval --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct EvalDocument {
    /// Always true: the histories are simulated ([`crate::core::simulate`]).
    pub simulated: bool,
    /// Seeds of the simulated histories.
    pub seeds: Vec<u64>,
    /// Last simulated day.
    pub until: NaiveDate,
    /// The evaluation's settings.
    pub settings: EvalSettings,
    /// The recommender's parameters.
    pub params: Params,
    /// Simulation parameters overridden (`name=value`, as given to `--sim`); empty for the
    /// defaults of [`crate::core::simulate::SimParams`].
    pub simulation_overrides: Vec<String>,
    /// With every simulated mechanism.
    pub results: Variant,
    /// With neighbours' help and local support switched off (the graph has nothing to find).
    pub ablation: Option<Variant>,
}

/// Cases of every seed for one simulation setting, two seeds at a time (one per core).
fn cases_of(
    t: &Territory,
    catalog: &Catalog,
    seeds: &[u64],
    sim: &(dyn Fn(u64) -> crate::core::simulate::SimParams + Sync),
    s: &EvalSettings,
    params: &Params,
    tick: &(dyn Fn() + Sync),
) -> Vec<Case> {
    let one = |seed: u64| {
        let demo = crate::core::simulate::simulate(t, catalog, &sim(seed));
        let mut h = AdoptionIndex::default();
        demo.adoptions.into_iter().for_each(|a| h.add_adoption(a));
        demo.feedback.into_iter().for_each(|f| {
            h.add_feedback(f);
        });
        tick();
        s.cuts
            .iter()
            .flat_map(|&cut| {
                let cases = cut_cases(t, catalog, &h, seed, cut, s, params);
                tick();
                cases
            })
            .collect::<Vec<Case>>()
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let mut out: Vec<(u64, Vec<Case>)> = Vec::new();
    for chunk in seeds.chunks(workers) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|&seed| (seed, scope.spawn(move || one(seed)))).collect();
            for (seed, h) in handles {
                out.push((seed, h.join().unwrap_or_default()));
            }
        });
    }
    out.sort_by_key(|(seed, _)| *seed);
    out.into_iter().flat_map(|(_, c)| c).collect()
}

/// How the histories of an evaluation are simulated.
pub struct Simulation<'a> {
    /// A seed's simulation parameters.
    pub params_of: &'a (dyn Fn(u64) -> crate::core::simulate::SimParams + Sync),
    /// The overrides those parameters carry (`name=value`), reported in the document.
    pub overrides: &'a [String],
    /// Also run with the place mechanisms off ([`crate::core::simulate::SimParams::without_place`]).
    pub ablation: bool,
}

/// Runs the evaluation on the simulated histories of `seeds` (see [`Simulation`]).
pub fn run(t: &Territory, catalog: &Catalog, seeds: &[u64], simulation: &Simulation, settings: &EvalSettings, params: &Params) -> EvalDocument {
    run_with_progress(t, catalog, seeds, simulation, settings, params, &|_, _| {})
}

/// [`run`], calling `progress(done, total)` (from the worker threads, hence `Fn + Sync`) after
/// each simulated history and each cut evaluated on it: `total` = seeds × (1 + cuts), twice
/// with the ablation; the last call has `done == total`.
pub fn run_with_progress(
    t: &Territory,
    catalog: &Catalog,
    seeds: &[u64],
    simulation: &Simulation,
    settings: &EvalSettings,
    params: &Params,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> EvalDocument {
    let Simulation { params_of: sim, overrides: simulation_overrides, ablation } = *simulation;
    let total = (seeds.len() * (1 + settings.cuts.len()) * if ablation { 2 } else { 1 }) as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let tick = || progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1, total);
    let variant = |name: &str, cases: Vec<Case>| {
        let (by_seed, by_cut, pooled) = report(&cases, settings.resamples);
        Variant { simulation: name.to_string(), by_seed, by_cut, pooled }
    };
    let with = if simulation_overrides.is_empty() { String::new() } else { format!(", with {}", simulation_overrides.join(", ")) };
    let results = variant(&format!("every mechanism{with}"), cases_of(t, catalog, seeds, sim, settings, params, &tick));
    let ablation = ablation.then(|| {
        let off = |seed: u64| sim(seed).without_place();
        variant(&format!("neighbour help and local support off{with}"), cases_of(t, catalog, seeds, &off, settings, params, &tick))
    });
    let until = seeds.first().map_or(NaiveDate::MIN, |&s| sim(s).end);
    progress(total, total);
    EvalDocument {
        simulated: true,
        seeds: seeds.to_vec(),
        until,
        settings: settings.clone(),
        params: *params,
        simulation_overrides: simulation_overrides.to_vec(),
        results,
        ablation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_need_a_simulated_past_and_36_months_of_reports() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (start, until) = (d("2005-01-01"), d("2026-11-29"));
        assert!(EvalSettings::default().validate(start, until).is_ok());
        let with = |cut: &str| EvalSettings { cuts: vec![d(cut)], ..EvalSettings::default() }.validate(start, until);
        assert!(with("2023-11-29").is_ok(), "36 months of reports exactly");
        for bad in ["2023-11-30", "2030-01-01", "2005-01-01", "1990-01-01"] {
            let e = with(bad).unwrap_err();
            assert!(matches!(e, crate::error::Error::Invalid(_)) && e.to_string().contains(bad), "{bad}: {e}");
        }
        assert!(EvalSettings { cuts: vec![], ..EvalSettings::default() }.validate(start, until).is_err());
    }
}
