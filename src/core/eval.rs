//! Temporal backtest of the recommender against simple baselines.
//!
//! For each cut date, everything known before the cut is what the methods may read (the
//! history is read "as of" the cut: adoptions started before it, feedback dated before it).
//! A **case** is a (commune, category) pair in which the commune started at least one adoption
//! during the `horizon_months` after the cut; its **targets** are the (product, generation)
//! pairs it adopted then. Each method ranks candidates for the case (leaving out what the
//! commune already ran at the cut) and is scored on its top 3:
//!
//! - `hit@1`, `hit@3`: share of cases with a target in the top 1 / top 3;
//! - `ndcg@3`: normalised discounted cumulative gain with binary relevance;
//! - `coverage`: share of the (product, generation) pairs in service somewhere at the cut that
//!   appear in at least one top 3 (a recommender that always says the same thing covers little);
//! - `poor`: share of top-1 recommendations whose feedback during the horizon, across all
//!   communes, was poor: a mean reliability at least 0.25 below the mean of all reports of the
//!   category over the same months (at least 3 reports), among those with enough reports.
//!
//! Baselines: `global_popularity` (most run at the cut in the territory), `epci_popularity`
//! (most run in the commune's EPCI, then global), `newest` (newest released generation still
//! supported), `neighbour_majority` (most run among direct neighbours, then global).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Months, NaiveDate};
use serde::Serialize;

use crate::core::catalog::Catalog;
use crate::core::domain::{GenerationId, InseeCode, Slug};
use crate::core::history::AdoptionIndex;
use crate::core::recommend::{Ctx, Params, recommend};
use crate::core::territory::{CommuneIdx, Territory};

type Key = (Slug, Option<GenerationId>);

/// The methods compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// [`recommend`] with the given parameters.
    Recommender,
    /// Most run in the territory at the cut.
    GlobalPopularity,
    /// Most run in the commune's EPCI, completed by global popularity.
    EpciPopularity,
    /// Newest released generations still supported at the cut.
    Newest,
    /// Most run among the direct neighbours, completed by global popularity.
    NeighbourMajority,
}

impl Method {
    /// All methods, recommender first.
    pub const ALL: [Method; 5] = [Method::Recommender, Method::GlobalPopularity, Method::EpciPopularity, Method::Newest, Method::NeighbourMajority];

    /// Name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Recommender => "recommender",
            Method::GlobalPopularity => "global_popularity",
            Method::EpciPopularity => "epci_popularity",
            Method::Newest => "newest",
            Method::NeighbourMajority => "neighbour_majority",
        }
    }
}

/// Scores of one method on one cut (or on all cuts together, `cut = None`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Metrics {
    /// The method.
    pub method: Method,
    /// The cut date, `None` for the total.
    pub cut: Option<NaiveDate>,
    /// Number of cases.
    pub cases: usize,
    /// Share of cases with a target in the top 1.
    pub hit_at_1: f64,
    /// Share of cases with a target in the top 3.
    pub hit_at_3: f64,
    /// Mean NDCG@3.
    pub ndcg_at_3: f64,
    /// Catalogue coverage of the top 3, 0-1: share of the (product, generation) pairs in service
    /// at the cut (in the categories of the cases) that appear in at least one top 3.
    pub coverage: f64,
    /// Share of evaluable top-1 recommendations with poor later feedback.
    pub poor_share: f64,
    /// Number of evaluable top-1 recommendations.
    pub poor_evaluable: usize,
}

#[derive(Default, Clone)]
struct Acc {
    cases: usize,
    hit1: usize,
    hit3: usize,
    ndcg: f64,
    covered: HashSet<(Slug, Key)>,
    /// Covered pairs of earlier cuts (for the totals).
    covered_before: usize,
    available: usize,
    poor: usize,
    evaluable: usize,
}

impl Acc {
    fn metrics(&self, method: Method, cut: Option<NaiveDate>) -> Metrics {
        let n = self.cases.max(1) as f64;
        Metrics {
            method,
            cut,
            cases: self.cases,
            hit_at_1: self.hit1 as f64 / n,
            hit_at_3: self.hit3 as f64 / n,
            ndcg_at_3: self.ndcg / n,
            coverage: (self.covered.len() + self.covered_before) as f64 / self.available.max(1) as f64,
            poor_share: self.poor as f64 / self.evaluable.max(1) as f64,
            poor_evaluable: self.evaluable,
        }
    }

    fn merge(&mut self, o: &Acc) {
        self.cases += o.cases;
        self.hit1 += o.hit1;
        self.hit3 += o.hit3;
        self.ndcg += o.ndcg;
        self.poor += o.poor;
        self.evaluable += o.evaluable;
    }
}

fn ranked(counts: &HashMap<Key, usize>) -> Vec<Key> {
    let mut v: Vec<(&Key, &usize)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(k, _)| k.clone()).collect()
}

fn top3(primary: &[Key], fallback: &[Key], skip: &HashSet<Key>) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for k in primary.iter().chain(fallback) {
        if out.len() == 3 {
            break;
        }
        if !skip.contains(k) && !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

/// What the methods may read at one cut, and what they are scored against.
struct CutData {
    /// Cases: (commune, category) → (product, generation) pairs adopted in `[cut, end)`.
    cases: BTreeMap<(InseeCode, Slug), HashSet<Key>>,
    /// Adoptions in service at the cut: category → key → count.
    global: HashMap<Slug, HashMap<Key, usize>>,
    /// Keys in service at the cut per (commune, category), in adoption order.
    by_commune: HashMap<(InseeCode, Slug), Vec<Key>>,
    /// `global` ranked: most run first, ties by key.
    global_rank: HashMap<Slug, Vec<Key>>,
    /// Feedback dated in `[cut, end)` per (category, key): (sum of reliability 1-5, count).
    later: HashMap<(Slug, Key), (f64, usize)>,
    /// The same per category.
    later_cat: HashMap<Slug, (f64, usize)>,
    /// Newest supported generations per category at the cut: released by then, not ended;
    /// newest release first, ties by key.
    newest: HashMap<Slug, Vec<Key>>,
}

impl CutData {
    /// Reads `h` and `catalog` for the cut `cut` and the horizon end `end`.
    fn new(catalog: &Catalog, h: &AdoptionIndex, cut: NaiveDate, end: NaiveDate) -> Self {
        // Cases: adoptions started in [cut, end).
        let mut cases: BTreeMap<(InseeCode, Slug), HashSet<Key>> = BTreeMap::new();
        for a in h.adoptions().iter().filter(|a| a.since >= cut && a.since < end) {
            cases.entry((a.commune, a.category.clone())).or_default().insert((a.product.clone(), a.generation.clone()));
        }
        // What runs where at the cut.
        let mut global: HashMap<Slug, HashMap<Key, usize>> = HashMap::new();
        let mut by_commune: HashMap<(InseeCode, Slug), Vec<Key>> = HashMap::new();
        for a in h.adoptions().iter().filter(|a| a.active_on(cut)) {
            let key = (a.product.clone(), a.generation.clone());
            *global.entry(a.category.clone()).or_default().entry(key.clone()).or_default() += 1;
            by_commune.entry((a.commune, a.category.clone())).or_default().push(key);
        }
        let global_rank: HashMap<Slug, Vec<Key>> = global.iter().map(|(c, m)| (c.clone(), ranked(m))).collect();
        let (later, later_cat) = later_feedback(h, cut, end);
        CutData { cases, global, by_commune, global_rank, later, later_cat, newest: newest_supported(catalog, cut) }
    }

    /// The keys most run among `members` at the cut in `cat`, ties broken by global
    /// popularity, then by key.
    fn count_among(&self, t: &Territory, cat: &Slug, members: &mut dyn Iterator<Item = CommuneIdx>) -> Vec<Key> {
        let empty = Vec::new();
        let g = self.global_rank.get(cat).unwrap_or(&empty);
        let mut m: HashMap<Key, usize> = HashMap::new();
        for j in members {
            for k in self.by_commune.get(&(t.commune(j).code, cat.clone())).into_iter().flatten() {
                *m.entry(k.clone()).or_default() += 1;
            }
        }
        // Ties broken by global popularity.
        let pos: HashMap<&Key, usize> = g.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let mut v: Vec<(Key, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(pos.get(&a.0).unwrap_or(&usize::MAX).cmp(pos.get(&b.0).unwrap_or(&usize::MAX))).then(a.0.cmp(&b.0)));
        v.into_iter().map(|(k, _)| k).collect()
    }
}

/// Feedback dated in `[cut, end)`: per (category, key) and per category, (sum of reliability
/// 1-5, number of records), summed in adoption order then feedback order.
#[allow(clippy::type_complexity)]
fn later_feedback(h: &AdoptionIndex, cut: NaiveDate, end: NaiveDate) -> (HashMap<(Slug, Key), (f64, usize)>, HashMap<Slug, (f64, usize)>) {
    let mut later: HashMap<(Slug, Key), (f64, usize)> = HashMap::new();
    let mut later_cat: HashMap<Slug, (f64, usize)> = HashMap::new();
    for a in h.adoptions() {
        for f in h.feedback(a.id).iter().filter(|f| f.date >= cut && f.date < end) {
            for e in
                [later.entry((a.category.clone(), (a.product.clone(), a.generation.clone()))).or_default(), later_cat.entry(a.category.clone()).or_default()]
            {
                e.0 += f64::from(f.reliability);
                e.1 += 1;
            }
        }
    }
    (later, later_cat)
}

/// Newest supported generations per category at `cut` (released by then, not past end of
/// support), newest release first, ties by key.
fn newest_supported(catalog: &Catalog, cut: NaiveDate) -> HashMap<Slug, Vec<Key>> {
    catalog
        .categories
        .iter()
        .map(|c| {
            let mut gens: Vec<(NaiveDate, Key)> = catalog
                .products_in(&c.slug)
                .flat_map(|p| {
                    p.generations
                        .iter()
                        .filter(|g| g.released.is_some_and(|r| r <= cut) && !g.support(cut).is_ended())
                        .map(move |g| (g.released.unwrap_or(cut), (p.id.clone(), Some(g.id.clone()))))
                })
                .collect();
            gens.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            (c.slug.clone(), gens.into_iter().map(|(_, k)| k).collect())
        })
        .collect()
}

/// Scores one method's ranked `list` for one case into `acc`: hit@1, hit@3, NDCG@3 with binary
/// relevance (`Σ 1/log2(rank + 1)` over hits, over the ideal for `min(targets, 3)` hits),
/// coverage of the top 3, and the poor-top-1 test (later mean reliability at least 0.25 under
/// the category's, over at least 3 reports).
fn score_case(acc: &mut Acc, data: &CutData, cat: &Slug, targets: &HashSet<Key>, list: &[Key]) {
    acc.cases += 1;
    let hits: Vec<bool> = list.iter().take(3).map(|k| targets.contains(k)).collect();
    acc.hit1 += usize::from(hits.first().copied().unwrap_or(false));
    acc.hit3 += usize::from(hits.iter().any(|&x| x));
    let dcg: f64 = hits.iter().enumerate().filter(|(_, x)| **x).map(|(i, _)| 1.0 / ((i + 2) as f64).log2()).sum();
    let idcg: f64 = (0..targets.len().min(3)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    acc.ndcg += dcg / idcg;
    for k in list.iter().take(3) {
        acc.covered.insert((cat.clone(), k.clone()));
    }
    if let Some((s, n)) = list.first().and_then(|k| data.later.get(&(cat.clone(), k.clone()))).filter(|(_, n)| *n >= 3) {
        let (cs, cn) = data.later_cat.get(cat).copied().unwrap_or((0.0, 1));
        acc.evaluable += 1;
        acc.poor += usize::from(s / (*n as f64) < cs / cn as f64 - 0.25);
    }
}

/// The ranked list of `method` for the case (`code`, `cat`), leaving out `skip` (what the
/// commune ran at the cut); the recommender is asked for 3 items with `params`.
#[allow(clippy::too_many_arguments)]
fn method_list(method: Method, ctx: &Ctx, data: &CutData, code: &InseeCode, idx: CommuneIdx, cat: &Slug, skip: &HashSet<Key>, params: &Params) -> Vec<Key> {
    let t = ctx.territory;
    let empty = Vec::new();
    let g = data.global_rank.get(cat).unwrap_or(&empty);
    match method {
        Method::Recommender => {
            let mut p = *params;
            p.limit = 3;
            recommend(ctx, code, cat, &p).map(|a| a.items.into_iter().map(|i| (i.product, i.generation)).collect()).unwrap_or_default()
        }
        Method::GlobalPopularity => top3(g, &[], skip),
        Method::EpciPopularity => {
            let members = t.commune(idx).epci.map(|s| t.members(&s).to_vec()).unwrap_or_default();
            top3(&data.count_among(t, cat, &mut members.into_iter().filter(|&j| j != idx)), g, skip)
        }
        Method::Newest => top3(data.newest.get(cat).unwrap_or(&empty), &[], skip),
        Method::NeighbourMajority => top3(&data.count_among(t, cat, &mut t.neighbours(idx).into_iter().map(|(j, _)| j)), g, skip),
    }
}

/// Runs the backtest. Returns one row per (cut, method), then one total row per method.
pub fn backtest(t: &Territory, catalog: &Catalog, h: &AdoptionIndex, cuts: &[NaiveDate], horizon_months: u32, params: &Params) -> Vec<Metrics> {
    let mut rows = Vec::new();
    let mut totals: BTreeMap<Method, Acc> = BTreeMap::new();
    for &cut in cuts {
        let end = cut.checked_add_months(Months::new(horizon_months)).unwrap_or(cut);
        let data = CutData::new(catalog, h, cut, end);
        let ctx = Ctx::new(t, catalog, h, cut);
        let mut accs: BTreeMap<Method, Acc> = Method::ALL.iter().map(|m| (*m, Acc::default())).collect();
        let categories_seen: HashSet<&Slug> = data.cases.keys().map(|(_, c)| c).collect();
        let available: usize = categories_seen.iter().map(|c| data.global.get(*c).map_or(0, HashMap::len)).sum();
        for ((code, cat), targets) in &data.cases {
            let Some(idx) = t.idx_of(code) else { continue };
            let skip: HashSet<Key> = data.by_commune.get(&(*code, cat.clone())).into_iter().flatten().cloned().collect();
            for method in Method::ALL {
                let list = method_list(method, &ctx, &data, code, idx, cat, &skip, params);
                let acc = accs.get_mut(&method).expect("every method has an accumulator");
                score_case(acc, &data, cat, targets, &list);
            }
        }
        for (m, mut acc) in accs {
            acc.available = available;
            rows.push(acc.metrics(m, Some(cut)));
            let tot = totals.entry(m).or_default();
            tot.merge(&acc);
            tot.available += available;
            tot.covered_before += acc.covered.len();
        }
    }
    for (m, acc) in totals {
        rows.push(acc.metrics(m, None));
    }
    rows
}

/// A Markdown table of the rows.
pub fn table(rows: &[Metrics]) -> String {
    let mut s =
        String::from("| cut | method | cases | hit@1 | hit@3 | NDCG@3 | coverage | poor top-1 |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} (n={}) |\n",
            r.cut.map_or("all".to_string(), |c| c.to_string()),
            r.method.name(),
            r.cases,
            r.hit_at_1,
            r.hit_at_3,
            r.ndcg_at_3,
            r.coverage,
            r.poor_share,
            r.poor_evaluable
        ));
    }
    s
}
