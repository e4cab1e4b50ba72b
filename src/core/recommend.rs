//! Recommendations v1: mature options already proven nearby, with their evidence.
//!
//! For a commune and a category, the candidates are the product generations in service in
//! communes within `hops` graph edges or in the same EPCI. Each candidate gets a score in
//! [0, 1] from three parts:
//! - **reliability**: mean reliability rating (1-5) of the adopters, proximity-weighted and
//!   shrunk toward the category mean with `prior_weight` pseudo-ratings (few ratings count
//!   less), mapped to [0, 1];
//! - **maturity**: weighted mean months in service nearby `m`, as `m / (m + 24)`; halved when
//!   support ends within 12 months, and halved when the generation is the newest of its product
//!   and younger than `young_months` while an older supported generation exists ("one
//!   generation behind");
//! - **proximity**: `1 - exp(-Σ w)` with adopter weight `w = 0.5^(hops-1)` (same-EPCI adopters
//!   beyond `hops` count as `hops + 1`).
//!
//! `score = 0.45 reliability + 0.30 maturity + 0.25 proximity`. Generations past end of support
//! and what the commune already runs are left out (the former are listed with the reason).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::core::catalog::{Catalog, Generation, Product, Support};
use crate::core::domain::{GenerationId, InseeCode, Slug};
use crate::core::history::History;
use crate::core::territory::{CommuneIdx, Territory};
use crate::error::{Error, Result};

/// Tunable parameters, with their bounds (out of bounds: `Error::Invalid`).
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Graph radius, 1 to 6 edges. Default 2: the neighbours and their neighbours.
    pub hops: u32,
    /// Number of items returned, 1 to 50. Default 5.
    pub limit: usize,
    /// Pseudo-ratings at the category mean added to every candidate (shrinkage strength).
    /// Default 3: a generation needs a few ratings before its own mean dominates.
    pub prior_weight: f64,
    /// A newest generation younger than this many months is "not yet proven". Default 12.
    pub young_months: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            hops: 2,
            limit: 5,
            prior_weight: 3.0,
            young_months: 12,
        }
    }
}

impl Params {
    /// Checks the bounds. Errors: `Error::Invalid` naming the parameter.
    pub fn validate(&self) -> Result<()> {
        if !(1..=6).contains(&self.hops) {
            return Err(Error::Invalid(format!(
                "hops must be 1 to 6, got {}",
                self.hops
            )));
        }
        if !(1..=50).contains(&self.limit) {
            return Err(Error::Invalid(format!(
                "limit must be 1 to 50, got {}",
                self.limit
            )));
        }
        Ok(())
    }
}

/// Which widening step produced the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Within `hops` edges, plus the EPCI.
    Neighbours,
    /// Within `hops + 2` edges, plus the EPCI.
    WiderNeighbours,
    /// The whole department.
    Department,
    /// The whole seeded territory.
    Territory,
}

/// Where the candidates come from.
#[derive(Clone, Debug, Serialize)]
pub struct Scope {
    /// The step that found candidates (or the last one tried).
    pub step: Step,
    /// Graph radius used at that step (`None` for department and territory).
    pub hops: Option<u32>,
    /// The commune has no border neighbour (an island): its graph links are to the nearest
    /// communes by centroid.
    pub isolated: bool,
    /// Communes looked at (excluding the commune itself).
    pub communes_considered: usize,
    /// French sentence for the page when the search had to widen or the commune is isolated.
    pub note: Option<String>,
}

/// One commune behind a recommendation.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    /// INSEE code.
    pub code: InseeCode,
    /// Name.
    pub name: String,
    /// Graph edges from the asking commune (`None`: reached through the EPCI or department).
    pub hops: Option<u32>,
    /// Member of the same EPCI.
    pub same_epci: bool,
    /// Distance between centroids, km.
    pub distance_km: f64,
    /// Months in service at the reference date.
    pub months_in_service: i64,
    /// Mean reliability rating (1-5); `None` without feedback.
    pub mean_rating: Option<f64>,
    /// Number of feedback records.
    pub n_ratings: u32,
    /// The adoption and its feedback were made by the demo simulator.
    pub simulated: bool,
}

/// The three parts of a score, each in [0, 1].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ScoreParts {
    /// See the module doc.
    pub proximity: f64,
    /// See the module doc.
    pub reliability: f64,
    /// See the module doc.
    pub maturity: f64,
}

/// Maturity status of a recommended generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In service nearby long enough, supported.
    Proven,
    /// The newest generation of its product, still young.
    NewestNotYetProven,
    /// Support ends within 12 months.
    EndsSoon,
    /// In service nearby for less than `young_months` on average.
    Young,
}

/// One recommended product generation.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// Product id.
    pub product: Slug,
    /// Product name.
    pub product_name: String,
    /// Generation, if known.
    pub generation: Option<GenerationId>,
    /// Generation label for display.
    pub generation_label: Option<String>,
    /// Score in [0, 1].
    pub score: f64,
    /// Its parts.
    pub parts: ScoreParts,
    /// Shrunk reliability estimate on the 1-5 scale.
    pub reliability_estimate: f64,
    /// Maturity status.
    pub status: Status,
    /// Support status of the generation (end-of-support date where known).
    pub support: Option<Support>,
    /// Number of communes running it in the scope.
    pub adopters: usize,
    /// Weighted mean months in service.
    pub mean_months_in_service: f64,
    /// The communes behind it (closest first, at most 20).
    pub evidence: Vec<Evidence>,
    /// One-line French reason for the page.
    pub reason: String,
}

/// A generation seen nearby but left out, with why.
#[derive(Clone, Debug, Serialize)]
pub struct Excluded {
    /// Product id.
    pub product: Slug,
    /// Generation.
    pub generation: Option<GenerationId>,
    /// Why (French).
    pub why: String,
}

/// What the commune runs now in the category.
#[derive(Clone, Debug, Serialize)]
pub struct CurrentUse {
    /// Adoption id.
    pub adoption_id: u64,
    /// Product id.
    pub product: Slug,
    /// Generation.
    pub generation: Option<GenerationId>,
    /// In service since.
    pub since: NaiveDate,
    /// Support status of the generation, if known.
    pub support: Option<Support>,
}

/// The answer to a recommendation query.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The commune.
    pub commune: InseeCode,
    /// The category.
    pub category: Slug,
    /// Reference date.
    pub as_of: NaiveDate,
    /// Where the candidates come from.
    pub scope: Scope,
    /// What the commune runs now.
    pub current: Vec<CurrentUse>,
    /// Recommendations, best first.
    pub items: Vec<Recommendation>,
    /// Generations seen nearby and left out.
    pub excluded: Vec<Excluded>,
}

/// Read-only context for scoring.
pub struct Ctx<'a> {
    /// Communes and graph.
    pub territory: &'a Territory,
    /// Catalogue.
    pub catalog: &'a Catalog,
    /// Adoptions and feedback.
    pub history: &'a History,
    /// Reference date.
    pub today: NaiveDate,
}

/// A commune of the neighbourhood and how it is reached.
#[derive(Clone, Copy, Debug)]
pub struct Reach {
    /// The commune.
    pub idx: CommuneIdx,
    /// Graph edges from the origin (`None`: outside the graph radius).
    pub hops: Option<u32>,
    /// Weight of its evidence, in (0, 1].
    pub weight: f64,
    /// Same EPCI as the origin.
    pub same_epci: bool,
}

type Key = (Slug, Option<GenerationId>);

/// Mean reliability of all feedback in a category given on or before `today` (3.0 if none).
pub fn category_prior(history: &History, category: &Slug, today: NaiveDate) -> f64 {
    let (mut s, mut n) = (0.0, 0u32);
    for a in history
        .adoptions()
        .iter()
        .filter(|a| &a.category == category)
    {
        for f in history.feedback(a.id).iter().filter(|f| f.date <= today) {
            s += f64::from(f.reliability);
            n += 1;
        }
    }
    if n == 0 { 3.0 } else { s / f64::from(n) }
}

fn gen_of<'c>(catalog: &'c Catalog, key: &Key) -> Option<(&'c Product, Option<&'c Generation>)> {
    let p = catalog.product(&key.0).ok()?;
    Some((p, key.1.as_ref().and_then(|g| p.generation(g))))
}

fn fr(x: f64, d: usize) -> String {
    format!("{x:.d$}").replace('.', ",")
}

/// Scores every generation in service in `reach` for `category`, leaving out `skip` and what is
/// past end of support. Returns (ranked items, excluded). Used by [`recommend`] and by pooling.
pub fn score_candidates(
    ctx: &Ctx,
    reach: &[Reach],
    origin: Option<CommuneIdx>,
    category: &Slug,
    skip: &HashSet<Key>,
    params: &Params,
) -> (Vec<Recommendation>, Vec<Excluded>) {
    let prior = category_prior(ctx.history, category, ctx.today);
    let mut groups: BTreeMap<Key, Vec<(Reach, u64)>> = BTreeMap::new();
    for r in reach {
        let code = ctx.territory.commune(r.idx).code;
        for a in ctx.history.active(&code, category, ctx.today) {
            groups
                .entry((a.product.clone(), a.generation.clone()))
                .or_default()
                .push((*r, a.id));
        }
    }
    let mut items = Vec::new();
    let mut excluded = Vec::new();
    for (key, adopters) in groups {
        if skip.contains(&key) {
            continue;
        }
        let Some((product, generation)) = gen_of(ctx.catalog, &key) else {
            continue;
        };
        let support = generation.map(|g| g.support(ctx.today));
        if let Some(s) = support.filter(Support::is_ended) {
            let why = match s {
                Support::Ended(d) => format!("fin de support le {d}"),
                _ => "fin de support (date non publiée)".to_string(),
            };
            excluded.push(Excluded {
                product: key.0.clone(),
                generation: key.1.clone(),
                why,
            });
            continue;
        }
        let (mut sw, mut swn, mut swnr, mut swm) = (0.0, 0.0, 0.0, 0.0);
        let mut evidence = Vec::new();
        for (r, aid) in &adopters {
            let a = ctx.history.adoption(*aid).expect("indexed adoption");
            let rt = ctx.history.ratings(*aid, ctx.today);
            let months = a.months_in_service(ctx.today);
            sw += r.weight;
            swm += r.weight * months as f64;
            swn += r.weight * f64::from(rt.n);
            swnr += r.weight * f64::from(rt.n) * rt.mean_reliability;
            let c = ctx.territory.commune(r.idx);
            evidence.push(Evidence {
                code: c.code,
                name: c.name.clone(),
                hops: r.hops,
                same_epci: r.same_epci,
                distance_km: origin.map_or(0.0, |o| {
                    (ctx.territory.distance_km(o, r.idx) * 10.0).round() / 10.0
                }),
                months_in_service: months,
                mean_rating: (rt.n > 0).then(|| (rt.mean_reliability * 100.0).round() / 100.0),
                n_ratings: rt.n,
                simulated: a.simulated,
            });
        }
        let rel_est = (swnr + params.prior_weight * prior) / (swn + params.prior_weight);
        let reliability = ((rel_est - 1.0) / 4.0).clamp(0.0, 1.0);
        let mean_months = swm / sw;
        let mut maturity = mean_months / (mean_months + 24.0);
        let mut status = if mean_months < params.young_months as f64 {
            Status::Young
        } else {
            Status::Proven
        };
        let mut notes = Vec::new();
        if let Some(Support::EndsSoon(d)) = support {
            maturity *= 0.5;
            status = Status::EndsSoon;
            notes.push(format!("attention : fin de support le {d}"));
        }
        if let Some(g) = generation {
            let newest = product.newest_by(ctx.today).is_some_and(|n| n.id == g.id);
            let young = g
                .age_months(ctx.today)
                .is_some_and(|m| m < params.young_months)
                || mean_months < params.young_months as f64;
            let older_ok = product
                .previous(g)
                .is_some_and(|p| !p.support(ctx.today).is_ended());
            if newest && young && older_ok {
                maturity *= 0.5;
                status = Status::NewestNotYetProven;
                notes.push(
                    "génération la plus récente, pas encore éprouvée : la précédente est préférée"
                        .to_string(),
                );
            }
        }
        let proximity = 1.0 - (-sw).exp();
        let score = 0.45 * reliability + 0.30 * maturity + 0.25 * proximity;
        evidence.sort_by(|a, b| {
            a.hops
                .unwrap_or(u32::MAX)
                .cmp(&b.hops.unwrap_or(u32::MAX))
                .then(b.months_in_service.cmp(&a.months_in_service))
                .then(a.code.cmp(&b.code))
        });
        let n = evidence.len();
        let max_hops = evidence.iter().filter_map(|e| e.hops).max();
        let mut reason = format!(
            "En service dans {n} commune{} {} depuis {} mois en moyenne ; fiabilité estimée {}/5",
            if n > 1 { "s" } else { "" },
            match max_hops {
                Some(h) => format!(
                    "voisine{} (jusqu'à {h} saut{})",
                    if n > 1 { "s" } else { "" },
                    if h > 1 { "s" } else { "" }
                ),
                None => "proche".into(),
            },
            fr(mean_months, 0),
            fr(rel_est, 1)
        );
        for note in notes {
            reason.push_str(" ; ");
            reason.push_str(&note);
        }
        reason.push('.');
        evidence.truncate(20);
        items.push(Recommendation {
            product: key.0.clone(),
            product_name: product.name.clone(),
            generation: key.1.clone(),
            generation_label: generation
                .map(|g| g.label.clone())
                .or_else(|| key.1.as_ref().map(|g| g.to_string())),
            score: (score * 1000.0).round() / 1000.0,
            parts: ScoreParts {
                proximity: round3(proximity),
                reliability: round3(reliability),
                maturity: round3(maturity),
            },
            reliability_estimate: (rel_est * 100.0).round() / 100.0,
            status,
            support,
            adopters: n,
            mean_months_in_service: (mean_months * 10.0).round() / 10.0,
            evidence,
            reason,
        });
    }
    items.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.adopters.cmp(&a.adopters))
            .then(a.product.cmp(&b.product))
            .then(a.generation.cmp(&b.generation))
    });
    (items, excluded)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The neighbourhood of a commune at a widening step.
fn reach_at(t: &Territory, idx: CommuneIdx, step: Step, hops: u32) -> Vec<Reach> {
    let c = t.commune(idx);
    let weight = |h: u32| 0.5f64.powi(h as i32 - 1);
    let same_epci = |j: CommuneIdx| c.epci.is_some() && t.commune(j).epci == c.epci;
    let mut out: Vec<Reach> = Vec::new();
    let mut seen: HashMap<CommuneIdx, usize> = HashMap::new();
    let radius = match step {
        Step::Neighbours => hops,
        Step::WiderNeighbours => hops + 2,
        Step::Department | Step::Territory => hops + 2,
    };
    for n in t.within_hops(idx, radius) {
        seen.insert(n.idx, out.len());
        out.push(Reach {
            idx: n.idx,
            hops: Some(n.hops),
            weight: weight(n.hops),
            same_epci: same_epci(n.idx),
        });
    }
    let mut add = |j: CommuneIdx, w: f64| {
        if j != idx && !seen.contains_key(&j) {
            seen.insert(j, out.len());
            out.push(Reach {
                idx: j,
                hops: None,
                weight: w,
                same_epci: same_epci(j),
            });
        }
    };
    if let Some(s) = &c.epci {
        for &m in t.members(s) {
            add(m, weight(radius + 1));
        }
    }
    match step {
        Step::Department => {
            for j in 0..t.communes().len() as CommuneIdx {
                if t.commune(j).department == c.department {
                    add(j, weight(radius + 2));
                }
            }
        }
        Step::Territory => {
            for j in 0..t.communes().len() as CommuneIdx {
                add(j, weight(radius + 3));
            }
        }
        _ => {}
    }
    out
}

/// Recommends generations for `commune` in `category`. Errors: `NotFound` for an unknown
/// commune or category, `Invalid` for parameters out of bounds.
pub fn recommend(
    ctx: &Ctx,
    commune: &InseeCode,
    category: &Slug,
    params: &Params,
) -> Result<Answer> {
    params.validate()?;
    let idx = ctx.territory.find(commune)?;
    ctx.catalog.category(category)?;
    let current: Vec<CurrentUse> = ctx
        .history
        .active(commune, category, ctx.today)
        .map(|a| CurrentUse {
            adoption_id: a.id,
            product: a.product.clone(),
            generation: a.generation.clone(),
            since: a.since,
            support: gen_of(ctx.catalog, &(a.product.clone(), a.generation.clone()))
                .and_then(|(_, g)| g)
                .map(|g| g.support(ctx.today)),
        })
        .collect();
    let skip: HashSet<Key> = current
        .iter()
        .map(|c| (c.product.clone(), c.generation.clone()))
        .collect();
    let isolated = !ctx.territory.has_border_neighbour(idx);
    let steps = [
        Step::Neighbours,
        Step::WiderNeighbours,
        Step::Department,
        Step::Territory,
    ];
    let mut last = None;
    for step in steps {
        let reach = reach_at(ctx.territory, idx, step, params.hops);
        let (mut items, excluded) =
            score_candidates(ctx, &reach, Some(idx), category, &skip, params);
        let found = !items.is_empty();
        if found || step == Step::Territory {
            items.truncate(params.limit);
            let note = match (step, isolated) {
                (Step::Neighbours, false) => None,
                (Step::Neighbours, true) => Some("Commune sans voisine terrestre : les voisines retenues sont les communes les plus proches et celles de l'EPCI.".to_string()),
                (Step::WiderNeighbours, _) => Some(format!("Rien à {} sauts : recherche élargie à {} sauts.", params.hops, params.hops + 2)),
                (Step::Department, _) => Some("Rien dans le voisinage : recherche élargie au département.".to_string()),
                (Step::Territory, _) if found => Some("Rien dans le département : recherche élargie à tout le territoire.".to_string()),
                (Step::Territory, _) => Some("Aucune commune du territoire n'a encore déclaré de produit dans cette catégorie.".to_string()),
            };
            let hops = match step {
                Step::Neighbours => Some(params.hops),
                Step::WiderNeighbours => Some(params.hops + 2),
                _ => None,
            };
            return Ok(Answer {
                commune: *commune,
                category: category.clone(),
                as_of: ctx.today,
                scope: Scope {
                    step,
                    hops,
                    isolated,
                    communes_considered: reach.len(),
                    note,
                },
                current,
                items,
                excluded,
            });
        }
        last = Some(excluded);
    }
    unreachable!("the territory step always returns {last:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog::tests::small as small_catalog;
    use crate::core::history::{Adoption, Feedback};
    use crate::core::territory::tests::small as small_territory;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn adopt(
        h: &mut History,
        id: u64,
        code: &str,
        product: &str,
        generation: Option<&str>,
        since: &str,
        ratings: &[u8],
    ) {
        h.add_adoption(Adoption {
            id,
            commune: InseeCode::parse(code).unwrap(),
            category: Slug::parse("site-web").unwrap(),
            product: Slug::parse(product).unwrap(),
            generation: generation.map(|g| GenerationId::parse(g).unwrap()),
            since: d(since),
            until: None,
            contract_end: None,
            workstations: None,
            simulated: false,
        });
        for (k, r) in ratings.iter().enumerate() {
            h.add_feedback(Feedback {
                id: id * 100 + k as u64,
                adoption_id: id,
                date: d(since) + chrono::Days::new(30 * (k as u64 + 1)),
                reliability: *r,
                incidents: 0,
                downtime_hours: 0.0,
                support: 4,
                comment: None,
                simulated: false,
            });
        }
    }

    #[test]
    fn one_generation_behind_and_end_of_support() {
        let (t, c) = (small_territory(), small_catalog());
        let mut h = History::default();
        // B (1 hop from A) runs cms 2 since 2019, C (2 hops) runs the young cms 3, D runs cms 1 (ended).
        adopt(
            &mut h,
            1,
            "35002",
            "cms",
            Some("2"),
            "2019-01-01",
            &[4, 4, 4],
        );
        adopt(
            &mut h,
            2,
            "35003",
            "cms",
            Some("3"),
            "2025-07-01",
            &[4, 4, 4],
        );
        adopt(&mut h, 3, "35004", "cms", Some("1"), "2011-01-01", &[5, 5]);
        let ctx = Ctx {
            territory: &t,
            catalog: &c,
            history: &h,
            today: d("2026-01-01"),
        };
        let a = recommend(
            &ctx,
            &InseeCode::parse("35001").unwrap(),
            &Slug::parse("site-web").unwrap(),
            &Params {
                hops: 3,
                ..Params::default()
            },
        )
        .unwrap();
        let ids: Vec<_> = a
            .items
            .iter()
            .map(|i| i.generation.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(
            ids,
            vec!["2", "3"],
            "the proven generation before the young newest one"
        );
        assert_eq!(a.items[1].status, Status::NewestNotYetProven);
        assert_eq!(a.excluded.len(), 1);
        assert!(a.excluded[0].why.contains("2018-01-01"));
        assert_eq!(a.items[0].evidence[0].hops, Some(1));
        assert_eq!(a.items[0].evidence[0].n_ratings, 3);
        // cms 2: 84 months nearby, one adopter at 1 hop (weight 1); prior = mean of all 8 ratings = 4.25.
        let it = &a.items[0];
        assert_eq!(it.mean_months_in_service, 84.0);
        let rel = (3.0 * 4.0 + 3.0 * 4.25) / 6.0;
        assert!((it.reliability_estimate - (rel * 100.0f64).round() / 100.0).abs() < 1e-9);
        let expect =
            0.45 * (rel - 1.0) / 4.0 + 0.30 * 84.0 / 108.0 + 0.25 * (1.0 - (-1.0f64).exp());
        assert!(
            (it.score - (expect * 1000.0).round() / 1000.0).abs() < 1e-9,
            "{} vs {expect}",
            it.score
        );
    }

    #[test]
    fn shrinkage_prefers_many_good_ratings_over_few_glowing() {
        let (t, c) = (small_territory(), small_catalog());
        let mut h = History::default();
        adopt(&mut h, 1, "35002", "spip", None, "2015-01-01", &[5]);
        adopt(
            &mut h,
            2,
            "35002",
            "cms",
            Some("2"),
            "2015-01-01",
            &[2, 2, 2, 2, 2, 2],
        );
        let ctx = Ctx {
            territory: &t,
            catalog: &c,
            history: &h,
            today: d("2026-01-01"),
        };
        let a = recommend(
            &ctx,
            &InseeCode::parse("35001").unwrap(),
            &Slug::parse("site-web").unwrap(),
            &Params::default(),
        )
        .unwrap();
        let spip = a
            .items
            .iter()
            .find(|i| i.product.as_str() == "spip")
            .unwrap();
        // prior = (5 + 12) / 7; one rating of 5 is pulled strongly toward it.
        let prior = 17.0 / 7.0;
        assert!(
            (spip.reliability_estimate - ((5.0 + 3.0 * prior) / 4.0 * 100.0f64).round() / 100.0)
                .abs()
                < 1e-9
        );
        assert!(spip.reliability_estimate < 4.0);
    }

    #[test]
    fn island_widens_and_skips_what_it_runs() {
        let (t, c) = (small_territory(), small_catalog());
        let mut h = History::default();
        adopt(&mut h, 1, "35001", "cms", Some("2"), "2019-01-01", &[4]);
        adopt(&mut h, 2, "35005", "spip", None, "2019-01-01", &[4]);
        let ctx = Ctx {
            territory: &t,
            catalog: &c,
            history: &h,
            today: d("2026-01-01"),
        };
        // E (35005) is an island linked to D only; nothing within 2 hops (D, C); A is 4 hops away.
        let a = recommend(
            &ctx,
            &InseeCode::parse("35005").unwrap(),
            &Slug::parse("site-web").unwrap(),
            &Params::default(),
        )
        .unwrap();
        assert!(a.scope.isolated);
        assert_eq!(a.scope.step, Step::WiderNeighbours);
        assert_eq!(a.items.len(), 1);
        assert_eq!(a.items[0].product.as_str(), "cms");
        assert_eq!(a.items[0].evidence[0].hops, Some(4));
        assert_eq!(
            a.current.len(),
            1,
            "spip is what E runs, not recommended back"
        );
    }

    #[test]
    fn bounds() {
        assert!(
            Params {
                hops: 0,
                ..Params::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Params {
                hops: 7,
                ..Params::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Params {
                limit: 51,
                ..Params::default()
            }
            .validate()
            .is_err()
        );
        assert!(Params::default().validate().is_ok());
    }
}
