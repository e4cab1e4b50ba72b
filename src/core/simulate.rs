//! The demo history: a **simulated** adoption and feedback history over the real neighbour
//! graph, deterministic from a seed. Every record it makes has `simulated: true`; nothing here
//! is a real opinion about a real product.
//!
//! The model (parameters in [`SimParams`], fixed before any evaluation of the recommender):
//! - **Diffusion**, monthly from `start` to `end`: a commune without a product in a category
//!   adopts one with probability `1 - exp(-h · size · (1 + a·s_nb + b·s_epci))`, where `h` is
//!   the category's base hazard, `size` a factor of its population class, `s_nb` the share of
//!   its graph neighbours and `s_epci` the share of its EPCI that already run something there.
//!   At `start` a share of communes is already equipped (initial share per category kind).
//!   The base hazard of `site-web` is calibrated so that about 49 % of communes under 2,000
//!   inhabitants have a website at the end of 2013 (M@rsoin survey figure); the others use
//!   [`SimParams::base_hazard`].
//! - **Choice**: a product of the category is drawn with weight `1 + c · share of neighbours and
//!   EPCI members running it` (no product is favoured otherwise); the generation is the newest
//!   released then, or with probability `one_behind` the one before it.
//! - **Upgrades**: from `upgrade_lead_months` before end of support, each month with probability
//!   `upgrade_rate`, the commune moves to a newer supported generation; some lag past the end.
//! - **Feedback**: one record about 6 months after adoption, then yearly (at most 6). Incidents
//!   are Poisson with mean `incident_base · (1 + teething · exp(-age / 9))` in the first year
//!   (`age` = months between the generation's release and the adoption; for products with no
//!   published generations, months since the product's first simulated adoption), and
//!   `incident_base` afterwards. Reliability = `round(4.6 - 0.45 · incidents + N(0, 0.5))` in
//!   1-5; downtime = incidents × Exp(mean 3 h); support = `round(N(3.8, 0.8))` in 1-5. The same
//!   curve for every product: early adopters of any product meet more incidents.
//! - **Switching**: a commune whose simulated reliability mean is under 2.5 over at least 2
//!   reports (the shared rule [`crate::core::history::is_poor_rating`]) leaves its product
//!   with probability `switch_rate` a month.

use std::collections::HashMap;

use chrono::{Datelike, Months, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal, Poisson};

use crate::core::catalog::{Catalog, Product, months_between};
use crate::core::domain::{GenerationId, SizeClass, Slug};
use crate::core::history::{Adoption, Feedback, is_poor_rating};
use crate::core::territory::{CommuneIdx, Territory};

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
    /// Mean incidents per feedback period for a mature generation. Default 0.6.
    pub incident_base: f64,
    /// Extra incidents for a brand-new generation (multiplier at age 0). Default 3.
    pub teething: f64,
    /// Target share of communes under 2,000 inhabitants with a website at the end of 2013.
    /// Default 0.49 (M@rsoin survey).
    pub website_target_2013: f64,
}

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
            teething: 3.0,
            website_target_2013: 0.49,
        }
    }
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
    /// Share of communes under 2,000 inhabitants with a website on 2013-12-31.
    pub website_share_2013: f64,
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

/// One category's diffusion state.
struct Diffusion<'a> {
    slug: &'a Slug,
    products: Vec<&'a Product>,
    hazard: f64,
    rng: ChaCha8Rng,
    /// Current adoption per commune: (adoption index in `out`), or none.
    current: Vec<Option<usize>>,
}

struct World<'a> {
    t: &'a Territory,
    p: &'a SimParams,
    nb: Vec<Vec<CommuneIdx>>,
    epci_members: Vec<&'a [CommuneIdx]>,
    size: Vec<f64>,
}

impl World<'_> {
    fn share(&self, set: &[CommuneIdx], current: &[Option<usize>]) -> f64 {
        if set.is_empty() { 0.0 } else { set.iter().filter(|&&j| current[j as usize].is_some()).count() as f64 / set.len() as f64 }
    }
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

fn pick_generation(product: &Product, date: NaiveDate, rng: &mut ChaCha8Rng, one_behind: f64) -> Option<Option<GenerationId>> {
    if product.generations.is_empty() {
        return Some(None);
    }
    let released: Vec<_> = product.released_by(date).filter(|g| !g.support(date).is_ended()).collect();
    let newest = released.last()?;
    if released.len() >= 2 && rng.random_bool(one_behind) {
        return Some(Some(released[released.len() - 2].id.clone()));
    }
    Some(Some(newest.id.clone()))
}

/// Runs the diffusion of one category; appends adoptions to `out`. Returns the state.
fn diffuse<'a>(w: &World<'a>, cat: &'a Slug, kind: &str, products: Vec<&'a Product>, hazard: f64, until: NaiveDate, out: &mut Vec<Adoption>) -> Diffusion<'a> {
    let n = w.t.communes().len();
    let mut d = Diffusion { slug: cat, products, hazard, rng: ChaCha8Rng::seed_from_u64(w.p.seed ^ fnv(cat.as_str())), current: vec![None; n] };
    if d.products.is_empty() {
        return d;
    }
    let share0 = initial_share(cat.as_str(), kind);
    for (mi, month) in months(w.p.start, until).into_iter().enumerate() {
        for i in 0..n {
            if d.current[i].is_some() {
                continue;
            }
            let u: f64 = d.rng.random();
            let adopt = if mi == 0 {
                u < share0
            } else {
                let s_nb = w.share(&w.nb[i], &d.current);
                let s_epci = w.share(w.epci_members[i], &d.current);
                let rate = d.hazard * w.size[i] * (1.0 + w.p.neighbour_influence * s_nb + w.p.epci_influence * s_epci);
                u < 1.0 - (-rate).exp()
            };
            if !adopt {
                continue;
            }
            // Product choice, weighted by imitation of neighbours and EPCI members.
            let mut counts: HashMap<&Slug, f64> = HashMap::new();
            let peers: Vec<CommuneIdx> = w.nb[i].iter().chain(w.epci_members[i].iter()).copied().filter(|&j| j as usize != i).collect();
            for &j in &peers {
                if let Some(k) = d.current[j as usize] {
                    *counts.entry(&out[k].product).or_default() += 1.0;
                }
            }
            let available: Vec<&Product> =
                d.products.iter().copied().filter(|p| p.generations.is_empty() || p.released_by(month).any(|g| !g.support(month).is_ended())).collect();
            if available.is_empty() {
                continue;
            }
            let peers_n = peers.len().max(1) as f64;
            let weights: Vec<f64> = available.iter().map(|p| 1.0 + w.p.imitation * counts.get(&p.id).copied().unwrap_or(0.0) / peers_n).collect();
            let total: f64 = weights.iter().sum();
            let mut x = d.rng.random::<f64>() * total;
            let mut chosen = available[available.len() - 1];
            for (p, wt) in available.iter().zip(&weights) {
                if x < *wt {
                    chosen = p;
                    break;
                }
                x -= wt;
            }
            let Some(generation) = pick_generation(chosen, month, &mut d.rng, w.p.one_behind) else {
                continue;
            };
            // Spread the start over the month, deterministically.
            let since = month + chrono::Days::new(d.rng.random_range(0..28));
            if since > until {
                continue;
            }
            d.current[i] = Some(out.len());
            out.push(Adoption {
                id: 0,
                commune: w.t.commune(i as CommuneIdx).code,
                category: cat.clone(),
                product: chosen.id.clone(),
                generation,
                since,
                until: None,
                contract_end: None,
                workstations: None,
                simulated: true,
            });
        }
    }
    d
}

fn website_share(w: &World, adoptions: &[Adoption], date: NaiveDate) -> f64 {
    let small: Vec<_> = w.t.communes().iter().filter(|c| c.population < 2000).collect();
    let with: std::collections::HashSet<_> = adoptions.iter().filter(|a| a.active_on(date)).map(|a| a.commune).collect();
    small.iter().filter(|c| with.contains(&c.code)).count() as f64 / small.len().max(1) as f64
}

/// Finds the `site-web` base hazard that gives `target` share at the end of 2013 (bisection on
/// the same random streams as the full run).
fn calibrate_website(w: &World, cat: &Slug, kind: &str, products: &[&Product]) -> (f64, f64) {
    let end2013 = NaiveDate::from_ymd_opt(2013, 12, 31).unwrap_or(w.p.end);
    let until = end2013.min(w.p.end);
    let (mut lo, mut hi) = (0.0f64, 0.05f64);
    let mut best = (0.0, 0.0, f64::MAX);
    for _ in 0..24 {
        let mid = (lo + hi) / 2.0;
        let mut out = Vec::new();
        diffuse(w, cat, kind, products.to_vec(), mid, until, &mut out);
        let s = website_share(w, &out, until);
        if (s - w.p.website_target_2013).abs() < best.2 {
            best = (mid, s, (s - w.p.website_target_2013).abs());
        }
        if s < w.p.website_target_2013 { lo = mid } else { hi = mid }
    }
    (best.0, best.1)
}

/// How a simulated adoption ends: (month it ends, the (product, generation) the commune moves
/// to, if any).
type Ending = (NaiveDate, Option<(Slug, Option<GenerationId>)>);

/// One simulated feedback record `age` months (generation age at adoption, see the module
/// doc) into a generation's life, dated `date`, for adoption id `adoption_id`. Draws, in this
/// order: incidents ~ Poisson(`incident_base · (1 + teething · exp(-age / 9))` in the first
/// year, `incident_base` after), reliability noise ~ N(0, 0.5), support ~ N(3.8, 0.8), then one
/// Exp(mean 3 h) downtime per incident. Reliability and support are rounded and clamped to 1-5,
/// downtime (hours) rounded to 0.1.
fn draw_feedback(rng: &mut ChaCha8Rng, p: &SimParams, age: f64, first_year: bool, adoption_id: u64, date: NaiveDate) -> Feedback {
    let lambda = p.incident_base * if first_year { 1.0 + p.teething * (-age / 9.0).exp() } else { 1.0 };
    let incidents = Poisson::new(lambda).map(|d| d.sample(rng) as u32).unwrap_or(0);
    let noise = Normal::new(0.0f64, 0.5).map(|d| d.sample(rng)).unwrap_or(0.0);
    let reliability = (4.6 - 0.45 * f64::from(incidents) + noise).round().clamp(1.0, 5.0) as u8;
    let support = Normal::new(3.8f64, 0.8).map(|d| d.sample(rng)).unwrap_or(3.8).round().clamp(1.0, 5.0) as u8;
    let exp = Exp::new(1.0 / 3.0).ok();
    let downtime: f64 = (0..incidents).map(|_| exp.map_or(3.0, |e| e.sample(rng))).sum::<f64>() + 0.0; // an empty f64 sum is -0.0
    Feedback { id: 0, adoption_id, date, reliability, incidents, downtime_hours: (downtime * 10.0).round() / 10.0, support, comment: None, simulated: true }
}

/// Months (0 or more, as f64) between the release of the adopted generation and the adoption;
/// for products with no published generations, since the product's first simulated adoption
/// (`first_use`); 24 when unknown.
fn generation_age(a: &Adoption, product: &Product, first_use: &HashMap<Slug, NaiveDate>) -> f64 {
    match a.generation.as_ref().and_then(|g| product.generation(g)) {
        Some(g) => g.age_months(a.since).unwrap_or(24),
        None => first_use.get(&a.product).map_or(24, |f| months_between(*f, a.since)),
    }
    .max(0) as f64
}

/// The second phase's state: its random stream (upgrades, switches, feedback) and the
/// feedback made so far (ids 0).
struct Followup {
    /// Seeded with `seed ^ 0x5eed_0f_11fe`, shared by every adoption in creation order.
    rng: ChaCha8Rng,
    /// Feedback records in creation order.
    feedback: Vec<Feedback>,
}

/// Follows one adoption month by month from its start to `p.end` on the shared stream `out.rng`:
/// feedback (about 6 months in, then yearly, at most 6, appended to `out.feedback` with
/// `adoption_id`), upgrade near end of support, switch away from a poorly rated product
/// ([`is_poor_rating`] on its own simulated reports). Returns how it ends, or `None` when it
/// is still running at `p.end`.
fn follow_adoption(
    a: &Adoption,
    adoption_id: u64,
    product: &Product,
    state: Option<&Diffusion>,
    age: f64,
    p: &SimParams,
    out: &mut Followup,
) -> Option<Ending> {
    let Followup { rng, feedback } = out;
    let mut month = a.since.with_day(1).unwrap_or(a.since);
    let mut reliab_sum = 0.0;
    let mut reliab_n = 0u32;
    let mut next_feedback = a.since.checked_add_months(Months::new(6));
    let mut count = 0;
    loop {
        month = month.checked_add_months(Months::new(1))?;
        if month > p.end {
            return None;
        }
        // Feedback.
        if let Some(fd) = next_feedback.filter(|fd| *fd <= month && count < 6) {
            let f = draw_feedback(rng, p, age, count == 0, adoption_id, fd);
            reliab_sum += f64::from(f.reliability);
            reliab_n += 1;
            count += 1;
            feedback.push(f);
            next_feedback = fd.checked_add_months(Months::new(12));
        }
        // Upgrade when support nears its end.
        let g = a.generation.as_ref().and_then(|g| product.generation(g));
        if let Some(g) = g
            && let Some(eos) = g.end_of_support
            && eos.checked_sub_months(Months::new(p.upgrade_lead_months)).is_some_and(|s| month >= s)
            && rng.random_bool(p.upgrade_rate)
        {
            let newer: Vec<_> = product.released_by(month).filter(|h| h.order > g.order && !h.support(month).is_ended()).collect();
            if let Some(target) = newer.last() {
                let gen_id = if newer.len() >= 2 && rng.random_bool(p.one_behind) { newer[newer.len() - 2].id.clone() } else { target.id.clone() };
                return Some((month, Some((a.product.clone(), Some(gen_id)))));
            }
        }
        // Switch away from a poorly rated product.
        if is_poor_rating(reliab_sum / f64::from(reliab_n), reliab_n) && rng.random_bool(p.switch_rate) {
            let others: Vec<&Product> = state.map(|s| s.products.iter().copied().filter(|q| q.id != a.product).collect()).unwrap_or_default();
            if !others.is_empty() {
                let q = others[rng.random_range(0..others.len())];
                if let Some(g) = pick_generation(q, month, rng, p.one_behind) {
                    return Some((month, Some((q.id.clone(), g))));
                }
            }
        }
    }
}

/// The diffusion of every category (the `site-web` hazard calibrated first, see
/// [`calibrate_website`]): the adoptions in creation order (ids 0), each category's final
/// state, and the calibrated `site-web` (hazard, share at the end of 2013).
fn diffuse_all<'a>(w: &World<'a>, catalog: &'a Catalog, p: &SimParams) -> (Vec<Adoption>, Vec<Diffusion<'a>>, (f64, f64)) {
    let mut adoptions: Vec<Adoption> = Vec::new();
    let mut website = (0.0, 0.0);
    let mut states = Vec::new();
    for cat in &catalog.categories {
        let products: Vec<&Product> = catalog.products_in(&cat.slug).filter(|p| !p.component).collect();
        let hazard = if cat.slug.as_str() == "site-web" {
            website = calibrate_website(w, &cat.slug, &cat.kind, &products);
            website.0
        } else {
            p.base_hazard
        };
        states.push(diffuse(w, &cat.slug, &cat.kind, products, hazard, p.end, &mut adoptions));
    }
    (adoptions, states, website)
}

/// Runs the whole simulation. Deterministic: the same territory, catalogue and parameters give
/// the same history.
pub fn simulate(t: &Territory, catalog: &Catalog, p: &SimParams) -> DemoHistory {
    let n = t.communes().len();
    let w = World {
        t,
        p,
        nb: (0..n as CommuneIdx).map(|i| t.neighbours(i).into_iter().map(|(j, _)| j).collect()).collect(),
        epci_members: (0..n as CommuneIdx).map(|i| t.commune(i).epci.map(|s| t.members(&s)).unwrap_or(&[])).collect(),
        size: t.communes().iter().map(|c| size_factor(c.size_class())).collect(),
    };
    let (mut adoptions, states, website) = diffuse_all(&w, catalog, p);
    // Upgrades and switches, then feedback, on a separate random stream.
    let mut out = Followup { rng: ChaCha8Rng::seed_from_u64(p.seed ^ 0x005e_ed0f_11fe), feedback: Vec::new() };
    let mut first_use: HashMap<Slug, NaiveDate> = HashMap::new();
    for a in &adoptions {
        let e = first_use.entry(a.product.clone()).or_insert(a.since);
        *e = (*e).min(a.since);
    }
    let mut k = 0;
    while k < adoptions.len() {
        let a = adoptions[k].clone();
        k += 1;
        let Ok(product) = catalog.product(&a.product) else {
            continue;
        };
        let state = states.iter().find(|s| s.slug == &a.category);
        let age = generation_age(&a, product, &first_use);
        // Ids are given below: adoption k - 1 gets id k.
        if let Some((when, next)) = follow_adoption(&a, k as u64, product, state, age, p, &mut out) {
            adoptions[k - 1].until = Some(when);
            if let Some((product, generation)) = next {
                adoptions.push(Adoption {
                    id: 0,
                    commune: a.commune,
                    category: a.category.clone(),
                    product,
                    generation,
                    since: when,
                    until: None,
                    contract_end: None,
                    workstations: None,
                    simulated: true,
                });
            }
        }
    }
    // Ids: adoptions in creation order from 1; feedback sorted by (adoption, date) from 1.
    let mut feedback = out.feedback;
    for (i, a) in adoptions.iter_mut().enumerate() {
        a.id = i as u64 + 1;
    }
    feedback.sort_by(|a, b| a.adoption_id.cmp(&b.adoption_id).then(a.date.cmp(&b.date)));
    for (i, f) in feedback.iter_mut().enumerate() {
        f.id = i as u64 + 1;
    }
    DemoHistory { adoptions, feedback, website_hazard: website.0, website_share_2013: website.1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn deterministic_labelled_and_calibrated() {
        let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
        let p = SimParams::new(7, d("2016-06-30"));
        let a = simulate(&t, &c, &p);
        let b = simulate(&t, &c, &p);
        assert_eq!(a.adoptions, b.adoptions);
        assert_eq!(a.feedback, b.feedback);
        let other = simulate(&t, &c, &SimParams::new(8, d("2016-06-30")));
        assert_ne!(a.adoptions, other.adoptions, "another seed gives another history");
        assert!(a.adoptions.iter().all(|x| x.simulated) && a.feedback.iter().all(|f| f.simulated));
        // M@rsoin: about 49 % of communes under 2,000 inhabitants had a website in 2013.
        assert!((a.website_share_2013 - 0.49).abs() < 0.02, "{}", a.website_share_2013);
        // Every adoption names a known product serving its category, and a known generation
        // released by its start date when the product has generations.
        for x in &a.adoptions {
            let prod = c.product(&x.product).unwrap();
            assert!(prod.categories.contains(&x.category));
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

    #[test]
    fn early_adopters_meet_more_incidents() {
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
        // Model: 0.6 · (1 + 3 e^(-age/9)): about 2.2 at age 0-3 months, about 0.6 past 3 years.
        assert!(mean(&young) > 1.5 && mean(&old) < 0.8, "{} {}", mean(&young), mean(&old));
        assert!(h.adoptions.iter().any(|a| a.until.is_some()), "some upgrades or switches happen");
    }
}
