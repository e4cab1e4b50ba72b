//! Pooled purchases v1: per category, which members of an EPCI need something, the option most
//! proven among the members and their direct neighbours, and who already runs it.
//!
//! A member "needs" something in a category when it runs nothing there, runs a generation past
//! end of support or within 12 months of it, or rates what it runs poorly (mean reliability
//! below [`POOR_RATING`] over at least 2 feedback records).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use crate::core::catalog::Support;
use crate::core::domain::{GenerationId, InseeCode, Siren, Slug};
use crate::core::recommend::{Ctx, Params, Reach, Recommendation, score_candidates};
use crate::core::territory::CommuneIdx;
use crate::error::Result;

/// Mean reliability (1-5) under which a member's current product counts as poorly rated.
pub const POOR_RATING: f64 = 2.5;

/// Why a member is concerned by a groupement.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Need {
    /// Runs nothing in the category.
    NoProduct,
    /// Runs a generation past end of support.
    EndOfSupport {
        /// Product run.
        product: Slug,
        /// Generation run.
        generation: Option<GenerationId>,
        /// End-of-support date, if published.
        date: Option<NaiveDate>,
    },
    /// Runs a generation whose support ends within 12 months.
    EndsSoon {
        /// Product run.
        product: Slug,
        /// Generation run.
        generation: Option<GenerationId>,
        /// End-of-support date.
        date: NaiveDate,
    },
    /// Rates what it runs poorly.
    PoorRating {
        /// Product run.
        product: Slug,
        /// Generation run.
        generation: Option<GenerationId>,
        /// Mean reliability, 1-5.
        mean_reliability: f64,
        /// Number of feedback records.
        n: u32,
    },
}

/// A member commune in a groupement.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    /// INSEE code.
    pub code: InseeCode,
    /// Name.
    pub name: String,
    /// Population municipale.
    pub population: u32,
}

/// A member that needs something, with why.
#[derive(Clone, Debug, Serialize)]
pub struct Concerned {
    /// The member.
    #[serde(flatten)]
    pub member: Member,
    /// Why.
    pub need: Need,
    /// The same in one French sentence.
    pub reason: String,
}

/// A suggested groupement de commandes for one category.
#[derive(Clone, Debug, Serialize)]
pub struct Groupement {
    /// Category slug.
    pub category: Slug,
    /// Category label (French).
    pub category_label: String,
    /// The option most proven among members and their neighbours (`None` when nobody nearby
    /// runs anything supported in the category).
    pub option: Option<Recommendation>,
    /// Members that need something, each with a reason.
    pub concerned: Vec<Concerned>,
    /// Members already on the suggested option (candidates for a shared maintenance contract).
    pub already_on: Vec<Member>,
}

/// All groupements for an EPCI, most concerned members first.
#[derive(Clone, Debug, Serialize)]
pub struct PooledPurchases {
    /// SIREN of the EPCI.
    pub epci: Siren,
    /// Name of the EPCI.
    pub name: String,
    /// Reference date.
    pub as_of: NaiveDate,
    /// Members in the seeded territory.
    pub members_in_scope: usize,
    /// Categories where at least one member needs something.
    pub groupements: Vec<Groupement>,
}

fn member(ctx: &Ctx, i: CommuneIdx) -> Member {
    let c = ctx.territory.commune(i);
    Member { code: c.code, name: c.name.clone(), population: c.population }
}

/// Whether and why a member needs something in a category at `ctx.today`.
pub fn need_of(ctx: &Ctx, code: &InseeCode, category: &Slug) -> Option<Need> {
    let active: Vec<_> = ctx.history.active(code, category, ctx.today).collect();
    if active.is_empty() {
        return Some(Need::NoProduct);
    }
    for a in &active {
        let g = ctx.catalog.product(&a.product).ok().and_then(|p| a.generation.as_ref().and_then(|g| p.generation(g)));
        match g.map(|g| g.support(ctx.today)) {
            Some(Support::Ended(d)) => {
                return Some(Need::EndOfSupport { product: a.product.clone(), generation: a.generation.clone(), date: Some(d) });
            }
            Some(Support::EndedUndated(())) => {
                return Some(Need::EndOfSupport { product: a.product.clone(), generation: a.generation.clone(), date: None });
            }
            Some(Support::EndsSoon(d)) => {
                return Some(Need::EndsSoon { product: a.product.clone(), generation: a.generation.clone(), date: d });
            }
            _ => {}
        }
        let r = ctx.history.ratings(a.id, ctx.today);
        if r.n >= 2 && r.mean_reliability < POOR_RATING {
            return Some(Need::PoorRating {
                product: a.product.clone(),
                generation: a.generation.clone(),
                mean_reliability: (r.mean_reliability * 100.0).round() / 100.0,
                n: r.n,
            });
        }
    }
    None
}

fn reason(ctx: &Ctx, n: &Need) -> String {
    let name = |p: &Slug, g: &Option<GenerationId>| {
        let pn = ctx.catalog.product(p).map(|p| p.name.clone()).unwrap_or_else(|_| p.to_string());
        match g {
            Some(g) => format!("{pn} {g}"),
            None => pn,
        }
    };
    match n {
        Need::NoProduct => "Aucun produit déclaré dans cette catégorie.".into(),
        Need::EndOfSupport { product, generation, date: Some(d) } => format!("{} n'est plus supporté depuis le {d}.", name(product, generation)),
        Need::EndOfSupport { product, generation, date: None } => format!("{} n'est plus supporté.", name(product, generation)),
        Need::EndsSoon { product, generation, date } => format!("Fin de support de {} le {date}.", name(product, generation)),
        Need::PoorRating { product, generation, mean_reliability, n } => {
            format!("{} est jugé peu fiable ({}/5 sur {n} retours).", name(product, generation), format!("{mean_reliability:.1}").replace('.', ","))
        }
    }
}

/// Suggests groupements for an EPCI. Errors: `NotFound` for an unknown SIREN.
pub fn pooled_purchases(ctx: &Ctx, siren: &Siren) -> Result<PooledPurchases> {
    let epci = ctx.territory.epci(siren)?;
    let members = ctx.territory.members(siren);
    // Members weigh 1, their direct neighbours outside the EPCI 0.5.
    let mut reach: Vec<Reach> = members.iter().map(|&m| Reach { idx: m, hops: Some(0), weight: 1.0, same_epci: true, distance_km: None }).collect();
    let in_epci: HashSet<CommuneIdx> = members.iter().copied().collect();
    let mut seen = in_epci.clone();
    for &m in members {
        for (n, _) in ctx.territory.neighbours(m) {
            if seen.insert(n) {
                reach.push(Reach { idx: n, hops: Some(1), weight: 0.5, same_epci: false, distance_km: None });
            }
        }
    }
    let params = Params::default();
    let mut groupements = Vec::new();
    for cat in &ctx.catalog.categories {
        let concerned: Vec<Concerned> = members
            .iter()
            .filter_map(|&m| {
                let code = ctx.territory.commune(m).code;
                need_of(ctx, &code, &cat.slug).map(|need| Concerned { member: member(ctx, m), reason: reason(ctx, &need), need })
            })
            .collect();
        if concerned.is_empty() {
            continue;
        }
        let (items, _) = score_candidates(ctx, &reach, None, &cat.slug, &HashSet::new(), &params);
        let option = items.into_iter().find(|i| !matches!(i.support, Some(Support::EndsSoon(_))));
        let already_on = option
            .as_ref()
            .map(|o| {
                members
                    .iter()
                    .copied()
                    .filter(|&m| {
                        let code = ctx.territory.commune(m).code;
                        ctx.history.active(&code, &cat.slug, ctx.today).any(|a| a.product == o.product && a.generation == o.generation)
                    })
                    .map(|m| member(ctx, m))
                    .collect()
            })
            .unwrap_or_default();
        groupements.push(Groupement { category: cat.slug.clone(), category_label: cat.label.clone(), option, concerned, already_on });
    }
    let order: HashMap<&Slug, usize> = ctx.catalog.categories.iter().enumerate().map(|(i, c)| (&c.slug, i)).collect();
    groupements.sort_by(|a, b| b.concerned.len().cmp(&a.concerned.len()).then(order[&a.category].cmp(&order[&b.category])));
    Ok(PooledPurchases { epci: epci.siren, name: epci.name.clone(), as_of: ctx.today, members_in_scope: members.len(), groupements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog::tests::small as small_catalog;
    use crate::core::history::{Adoption, Feedback, History};
    use crate::core::territory::tests::small as small_territory;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn needs_and_option() {
        let (t, c) = (small_territory(), small_catalog());
        let mut h = History::default();
        let mk = |id: u64, code: &str, g: &str| Adoption {
            id,
            commune: InseeCode::parse(code).unwrap(),
            category: Slug::parse("site-web").unwrap(),
            product: Slug::parse("cms").unwrap(),
            generation: Some(GenerationId::parse(g).unwrap()),
            since: d("2012-01-01"),
            until: None,
            contract_end: None,
            workstations: None,
            simulated: true,
        };
        h.add_adoption(mk(1, "35001", "1")); // A: ended 2018-01-01
        h.add_adoption(mk(2, "35002", "2")); // B: supported, poorly rated below
        h.add_adoption(mk(3, "35004", "2")); // D (other EPCI, neighbour of C)
        for k in 0..2 {
            h.add_feedback(Feedback {
                id: 10 + k,
                adoption_id: 2,
                date: d("2020-01-01"),
                reliability: 2,
                incidents: 3,
                downtime_hours: 5.0,
                support: 3,
                comment: None,
                simulated: true,
            });
        }
        let ctx = Ctx::new(&t, &c, &h, d("2026-01-01"));
        let p = pooled_purchases(&ctx, &Siren::parse("200000001").unwrap()).unwrap();
        assert_eq!(p.members_in_scope, 3);
        let web = p.groupements.iter().find(|g| g.category.as_str() == "site-web").unwrap();
        let needs: Vec<_> = web.concerned.iter().map(|c| (c.member.code.as_str(), c.need.clone())).collect();
        assert_eq!(needs.len(), 3);
        assert!(matches!(&needs[0].1, Need::EndOfSupport { date: Some(x), .. } if *x == d("2018-01-01")));
        assert!(matches!(&needs[1].1, Need::PoorRating { n: 2, .. }));
        assert_eq!(needs[2], ("35003", Need::NoProduct));
        let opt = web.option.as_ref().unwrap();
        assert_eq!((opt.product.as_str(), opt.generation.as_ref().unwrap().as_str()), ("cms", "2"));
        assert_eq!(opt.adopters, 2, "B (member) and D (neighbour of C)");
        assert_eq!(web.already_on.iter().map(|m| m.code.as_str()).collect::<Vec<_>>(), vec!["35002"]);
        assert!(Siren::parse("200000009").map(|s| pooled_purchases(&ctx, &s)).unwrap().is_err());
    }
}
