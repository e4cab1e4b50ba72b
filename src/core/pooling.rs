//! Pooled purchases (groupements de commandes) for an EPCI.
//!
//! Per category, over a horizon (default 24 months):
//! - the members that **need** something, each with its reason: nothing in service; end of
//!   support of their generation already past or within the horizon (with the date; a newer
//!   release of the same generation is a free update, not a need); an obligation of
//!   `catalog/regulations.toml` in force or taking effect within the horizon that their
//!   generation is known not to meet; poor reliability (mean under [`POOR_RATING`] over at
//!   least 2 reports); a registered contract end within the horizon;
//! - the **option** most proven among the members and their direct neighbours (the
//!   recommendation engine run for the group; never a generation a member rates poorly, nor one
//!   whose support ends within the horizon); members whose own path stays in their product are
//!   listed apart (`own_path`), and a category where one member alone needs a purchase is a
//!   single need, not a groupement;
//! - the members already on it (who could join a shared maintenance contract);
//! - the estimated **volume** (communes, population, workstations where known) and, where the
//!   EPCI recorded an estimated price for the option ([`crate::core::prices`]; the catalogue
//!   gives none), the pooled amount and the procurement procedure that total requires on the
//!   question's date (dated thresholds of `catalog/procurement.toml`), with whose estimate it is
//!   and when it was made;
//! - the earliest **deadline**, a suggested **coordinator**, and the members whose deadlines
//!   fall within 6 months of each other (who can buy together).
//!
//! Groupements are ordered by their **value** to the members: the sum over concerned members
//! of an urgency weight (2 when the deadline is past, 1.5 within 12 months, 1 otherwise, 0.75
//! for a poor rating alone).

use std::collections::HashSet;

use chrono::{Months, NaiveDate};
use serde::Serialize;
use smallvec::SmallVec;

use crate::core::catalog::{Catalog, Category, Generation, Regulation, Support, Threshold};
use crate::core::domain::{GenerationId, InseeCode, Siren, Slug};
use crate::core::fr;
use crate::core::history::{Placed, is_poor_rating};
use crate::core::prices::{EstimateAuthor, EurHt, PriceBasis, PriceEstimate, estimate_for};
use crate::core::recommend::{Ctx, Params, Pick, Reach, Recommendation, TextIds, read_reach, score_and_choose, text_ids};
use crate::core::territory::{CommuneIdx, Epci};
use crate::error::{Error, Result};

pub use crate::core::history::POOR_RATING;

/// Default horizon, months.
pub const DEFAULT_HORIZON_MONTHS: u32 = 24;

/// Why a member is concerned by a groupement.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// Runs a generation whose support ends within the horizon.
    EndsSoon {
        /// Product run.
        product: Slug,
        /// Generation run.
        generation: Option<GenerationId>,
        /// End-of-support date.
        date: NaiveDate,
    },
    /// Runs a generation whose support ended before a regulatory date that applies to it.
    Regulation {
        /// Product run.
        product: Slug,
        /// Generation run.
        generation: Option<GenerationId>,
        /// The rule (French title).
        rule: String,
        /// Date the rule applies from.
        date: NaiveDate,
    },
    /// Its registered contract ends within the horizon.
    ContractEnds {
        /// Product run.
        product: Slug,
        /// Generation run.
        generation: Option<GenerationId>,
        /// Contract end.
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

impl Need {
    /// The date that drives the timetable, if any.
    pub fn deadline(&self) -> Option<NaiveDate> {
        match self {
            Need::EndOfSupport { date, .. } => *date,
            Need::EndsSoon { date, .. } | Need::ContractEnds { date, .. } | Need::Regulation { date, .. } => Some(*date),
            Need::NoProduct | Need::PoorRating { .. } => None,
        }
    }

    /// Urgency weight at `today`: 2 when the deadline is past (end of support, regulation, or
    /// a date on or before `today`), 1.5 within 12 months, 1 otherwise, 0.75 for a poor rating
    /// alone.
    pub fn urgency(&self, today: NaiveDate) -> f64 {
        match (self, self.deadline()) {
            (Need::PoorRating { .. }, _) => 0.75,
            (Need::EndOfSupport { .. } | Need::Regulation { .. }, _) => 2.0,
            (_, Some(d)) if d <= today => 2.0,
            (_, Some(d)) if today.checked_add_months(Months::new(12)).is_some_and(|m| d <= m) => 1.5,
            _ => 1.0,
        }
    }
}

/// A member commune in a groupement.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// INSEE code.
    pub code: InseeCode,
    /// Name.
    pub name: String,
    /// Population municipale.
    pub population: u32,
}

/// A member that needs something, with why.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Concerned {
    /// The member.
    #[serde(flatten)]
    pub member: Member,
    /// Why.
    pub need: Need,
    /// The same in one French sentence.
    pub reason: String,
    /// Workstations covered by its current adoption in the category, where registered.
    pub workstations: Option<u32>,
}

/// Estimated size of the pooled need, its amount and the procedure it requires.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Volume {
    /// Communes concerned.
    pub communes: usize,
    /// Their total population.
    pub population: u64,
    /// Workstations registered with their adoptions (sum of the known ones).
    pub workstations: Option<u64>,
    /// Pooled amount, € HT over the contract: the EPCI's estimate per commune × the communes
    /// concerned, or per seat × their declared workstations (or the catalogue's indicative
    /// price, where it gives one: it gives none yet). `None` without an estimate, or per seat
    /// when a commune concerned declared no workstations (see `partial_amount_eur_ht`).
    pub estimated_amount_eur_ht: Option<EurHt>,
    /// Per seat, when some communes concerned declared no workstations: the amount over those
    /// that did (a lower bound, not used to choose a procedure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_amount_eur_ht: Option<EurHt>,
    /// Per seat: the communes concerned that declared no workstations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_workstations: Vec<InseeCode>,
    /// The procurement procedure the pooled amount requires on the question's date (`as_of` or
    /// today), from the dated thresholds of `catalog/procurement.toml` (supplies and services).
    pub procedure: Option<Threshold>,
    /// The EPCI's estimate the amount comes from: amount per commune or seat, basis, when and
    /// by whom it was made.
    pub estimate: Option<EstimateUsed>,
    /// Why there is no amount or procedure, in French, when there is none.
    pub note: Option<String>,
}

/// The estimate a groupement's amount comes from (its note is not repeated here: it may hold
/// personal data).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EstimateUsed {
    /// Id of the estimate (`GET /api/v1/epcis/{siren}/price-estimates`).
    pub id: u64,
    /// Price for one commune or one seat, € HT.
    pub amount_eur_ht: EurHt,
    /// Per commune or per seat.
    pub basis: PriceBasis,
    /// The day it was made.
    pub made_on: NaiveDate,
    /// Who made it.
    pub by: EstimateAuthor,
}

/// A suggested groupement de commandes for one category.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Groupement {
    /// Category slug.
    pub category: Slug,
    /// Category label (French).
    pub category_label: String,
    /// The option most proven among members and their neighbours (`None` when nothing usable
    /// is in service nearby).
    pub option: Option<Recommendation>,
    /// Members that need something, each with a reason, earliest deadline first.
    pub concerned: Vec<Concerned>,
    /// Members already on the suggested option (candidates for a shared maintenance contract).
    pub already_on: Vec<Member>,
    /// Estimated volume and procedure.
    pub volume: Volume,
    /// Earliest deadline among the concerned members.
    pub earliest_deadline: Option<NaiveDate>,
    /// Suggested coordinator: the EPCI itself when 3 or more members are concerned, otherwise
    /// the largest concerned member.
    pub coordinator: String,
    /// Members whose deadlines fall within 6 months of the earliest one (they can buy together).
    pub due_together: Vec<InseeCode>,
    /// Value to the members (sum of urgency weights), used for the order.
    pub value: f64,
    /// Why it stands where it does, in French.
    pub rank_reason: String,
    /// Members with a need in the category whose own path stays in their product (a support
    /// ending later, a contract to renew, on another product than the option's): listed, not
    /// part of this purchase.
    pub own_path: Vec<Concerned>,
}

/// All groupements for an EPCI, most valuable first.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PooledPurchases {
    /// SIREN of the EPCI.
    pub epci: Siren,
    /// Name of the EPCI.
    pub name: String,
    /// Reference date.
    pub as_of: NaiveDate,
    /// Horizon, months.
    pub horizon_months: u32,
    /// Members in the seeded territory.
    pub members_in_scope: usize,
    /// Categories where at least two members need a purchase within the horizon: a
    /// groupement de commandes buys something for several communes.
    pub groupements: Vec<Groupement>,
    /// Categories where one member alone needs a purchase: that commune's own need, not a
    /// groupement (same shape, most valuable first).
    pub single_needs: Vec<Groupement>,
    /// Obligations taking effect within the horizon whose compliance the catalogue does not
    /// state for what members run ("conformité à vérifier"), by category, with the members
    /// concerned.
    pub to_check: Vec<MembersToCheck>,
}

/// Members running, in one category, generations whose compliance with an obligation taking
/// effect within the horizon the catalogue does not state.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MembersToCheck {
    /// Category slug.
    pub category: Slug,
    /// Category label (French).
    pub category_label: String,
    /// The obligation.
    pub check: crate::core::recommend::ComplianceCheck,
    /// The members to check, by code.
    pub members: Vec<Member>,
}

/// The compliance checks of the members over the horizon, per category and obligation.
/// `in_service`: per category of the catalogue, in its order, [`in_service`] of `members`.
fn members_to_check(ctx: &Ctx, members: &[CommuneIdx], in_service: &[InService], horizon_months: u32) -> Vec<MembersToCheck> {
    let until = ctx.today.checked_add_months(Months::new(horizon_months)).unwrap_or(ctx.today);
    let mut out: Vec<MembersToCheck> = Vec::new();
    for (cat, lists) in ctx.catalog.categories.iter().zip(in_service) {
        for (&m, active) in members.iter().zip(lists) {
            let c = ctx.territory.commune(m);
            for h in active {
                for check in crate::core::recommend::compliance_to_check(ctx, &cat.slug, h.generation, Some(c.population), until) {
                    let entry = match out.iter_mut().position(|x| x.category == cat.slug && x.check == check) {
                        Some(i) => &mut out[i],
                        None => {
                            out.push(MembersToCheck { category: cat.slug.clone(), category_label: cat.label.clone(), check, members: Vec::new() });
                            out.last_mut().expect("just pushed")
                        }
                    };
                    if !entry.members.iter().any(|x| x.code == c.code) {
                        entry.members.push(member(ctx, m));
                    }
                }
            }
        }
    }
    out
}

fn member(ctx: &Ctx, i: CommuneIdx) -> Member {
    let c = ctx.territory.commune(i);
    // Copied as text (`to_string` would go through the formatting machinery).
    Member { code: c.code, name: String::from(&*c.name), population: c.population }
}

/// An adoption in service with its generation as the catalogue knows it (`None` for an
/// unknown product or generation, or none recorded), looked up once for every reader.
#[derive(Clone, Copy)]
struct Held<'a> {
    adoption: Placed<'a>,
    generation: Option<&'a Generation>,
}

impl<'a> Held<'a> {
    fn new(catalog: &'a Catalog, adoption: Placed<'a>) -> Self {
        let generation = adoption.generation.as_ref().and_then(|g| catalog.product(&adoption.product).ok()?.generation(g));
        Held { adoption, generation }
    }

    /// Whether it is of `product`'s generation `key` as a candidate names it
    /// ([`Catalog::generation_key`], for a product the catalogue knows).
    fn is_of(&self, product: &Slug, key: Option<&GenerationId>) -> bool {
        &self.adoption.product == product && self.generation.map(|g| &g.id).or(self.adoption.generation.as_ref()) == key
    }
}

/// Per member (in the order of the members given), its adoptions in service on the context's
/// date in one category, each with its generation.
type InService<'a> = Vec<SmallVec<[Held<'a>; 2]>>;

/// [`InService`] of `members` in `category`: the category's lists are looked up once for all
/// members.
fn in_service<'a>(ctx: &Ctx<'a>, members: &[CommuneIdx], category: &Slug) -> InService<'a> {
    let by_commune = ctx.index.in_category_by_commune(category);
    members
        .iter()
        .map(|&m| by_commune.of_commune_placed(ctx.territory.code(m)).filter(|a| a.active_on(ctx.today)).map(|a| Held::new(ctx.catalog, a)).collect())
        .collect()
}

/// [`InService`] of `members` from the started adoptions of their [`group_reach`] in one
/// category ([`read_reach`]: the members come first, in order, each with its adoptions in the
/// order of [`in_service`]).
fn members_in_read<'a>(ctx: &Ctx<'a>, members: &[CommuneIdx], read: &[(Reach, Placed<'a>)]) -> InService<'a> {
    let mut out: InService = vec![SmallVec::new(); members.len()];
    let mut k = 0;
    // Each distinct (product, generation) text's generation, looked up once in the catalogue
    // (the index interns the texts: an address stands for one text; see [`text_ids`]).
    let mut known: SmallVec<[(TextIds, Option<&'a Generation>); 16]> = SmallVec::new();
    for (r, a) in read.iter().take_while(|(r, _)| r.hops == Some(0)) {
        // The members' entries come in the members' order: move to this one's.
        while k < members.len() && members[k] != r.idx {
            k += 1;
        }
        if k < members.len() && a.active_on(ctx.today) {
            let id = text_ids(a.adoption);
            let generation = match known.iter().find(|(x, _)| *x == id) {
                Some(&(_, g)) => g,
                None => {
                    let g = Held::new(ctx.catalog, *a).generation;
                    known.push((id, g));
                    g
                }
            };
            out[k].push(Held { adoption: *a, generation });
        }
    }
    out
}

/// Whether and why a member needs something in a category within `horizon_months`.
pub fn need_of(ctx: &Ctx, code: &InseeCode, category: &Slug, horizon_months: u32) -> Option<Need> {
    let active: SmallVec<[Held; 2]> =
        ctx.index.in_category_by_commune(category).of_commune_placed(code).filter(|a| a.active_on(ctx.today)).map(|a| Held::new(ctx.catalog, a)).collect();
    let population = ctx.territory.idx_of(code).map_or(0, |i| ctx.territory.commune(i).population);
    need_given(ctx, &active, population, &NeedBasis::new(ctx.catalog, ctx.today, category, horizon_months))
}

/// What [`need_given`] reads of the catalogue and the calendar for one category and horizon,
/// looked up once for every member rather than per member: the horizon's last day and the
/// obligations of the category taking effect by then, in catalogue order (whatever the
/// population: [`Regulation::applies_to`] is asked per member).
struct NeedBasis<'c> {
    today: NaiveDate,
    /// `today` + the horizon in months (`today` when out of the calendar's range).
    horizon: NaiveDate,
    regulations: SmallVec<[&'c Regulation; 4]>,
}

impl<'c> NeedBasis<'c> {
    fn new(catalog: &'c Catalog, today: NaiveDate, category: &Slug, horizon_months: u32) -> Self {
        let horizon = today.checked_add_months(Months::new(horizon_months)).unwrap_or(today);
        let regulations = catalog.regulations_of(category).filter(|r| r.date <= horizon).collect();
        NeedBasis { today, horizon, regulations }
    }
}

/// [`need_of`] a commune of `population` inhabitants whose adoptions in service in the
/// category of `basis` are `active`.
fn need_given(ctx: &Ctx, active: &[Held], population: u32, basis: &NeedBasis) -> Option<Need> {
    if active.is_empty() {
        return Some(Need::NoProduct);
    }
    let (today, horizon) = (basis.today, basis.horizon);
    for &Held { adoption: a, generation: g } in active {
        let named = || (a.product.clone(), a.generation.clone());
        if let Some(g) = g {
            if let Some(ended) = g.support_ended(today) {
                let (product, generation) = named();
                let date = match ended {
                    Support::Ended(d) => Some(d),
                    _ => None,
                };
                return Some(Need::EndOfSupport { product, generation, date });
            }
            if let Some(d) = g.end_of_support.filter(|d| *d <= horizon) {
                let (product, generation) = named();
                return Some(Need::EndsSoon { product, generation, date: d });
            }
            // An obligation in force or taking effect within the horizon that it is known not to
            // meet: support ending before it, or stated as failed by the catalogue.
            if let Some(r) = basis
                .regulations
                .iter()
                .find(|r| r.applies_to(Some(population)) && (g.fails.contains(&r.id) || g.end_of_support.is_some_and(|eos| eos < r.date)))
            {
                let (product, generation) = named();
                return Some(Need::Regulation { product, generation, rule: r.title.clone(), date: r.date });
            }
        }
        if let Some(d) = a.contract_end.filter(|d| *d <= horizon) {
            let (product, generation) = named();
            return Some(Need::ContractEnds { product, generation, date: d });
        }
        let (n, mean_reliability) = ctx.reliability_at(a);
        if is_poor_rating(mean_reliability, n) {
            let (product, generation) = named();
            return Some(Need::PoorRating { product, generation, mean_reliability: (mean_reliability * 100.0).round() / 100.0, n });
        }
    }
    None
}

fn reason(ctx: &Ctx, n: &Need) -> String {
    let name = |p: &Slug, g: &Option<GenerationId>| ctx.catalog.label(p, g.as_ref());
    match n {
        Need::NoProduct => "Aucun produit déclaré dans cette catégorie.".into(),
        Need::EndOfSupport { product, generation, date: Some(d) } => format!("{} n'est plus supporté depuis le {}.", name(product, generation), fr::Date(*d)),
        Need::EndOfSupport { product, generation, date: None } => format!("{} n'est plus supporté.", name(product, generation)),
        Need::EndsSoon { product, generation, date } => format!("Fin de support de {} le {}.", name(product, generation), fr::Date(*date)),
        Need::Regulation { product, generation, rule, date } => {
            format!("{} n'est plus supporté avant l'obligation « {rule} » ({}).", name(product, generation), fr::Date(*date))
        }
        Need::ContractEnds { product, generation, date } => format!("Le contrat de {} se termine le {}.", name(product, generation), fr::Date(*date)),
        Need::PoorRating { product, generation, mean_reliability, n } => {
            format!("{} est jugé peu fiable ({}/5 sur {n} retours).", name(product, generation), fr::decimal(*mean_reliability, 1))
        }
    }
}

/// The procurement procedure an estimated total (€ HT, supplies and services) requires on
/// `date`, from the dated thresholds of the catalogue; `None` when no threshold row covers it.
pub fn procedure_for(catalog: &Catalog, total_eur_ht: u64, date: NaiveDate) -> Option<&Threshold> {
    catalog.thresholds.iter().find(|t| {
        t.applies_to == "supplies_services"
            && t.valid_from <= date
            && t.valid_until.is_none_or(|u| date <= u)
            && t.from_eur_ht <= total_eur_ht
            && t.below_eur_ht.is_none_or(|b| total_eur_ht < b)
    })
}

/// The reach of a groupement: the members (weight 1, hops 0) and their direct neighbours
/// outside the EPCI (weight 0.5, hops 1), each once, members first; no distances.
fn group_reach(ctx: &Ctx, members: &[CommuneIdx]) -> Vec<Reach> {
    let mut reach: Vec<Reach> = members.iter().map(|&m| Reach { idx: m, hops: Some(0), weight: 1.0, same_epci: true, distance_km: None }).collect();
    let mut seen: fnv::FnvHashSet<CommuneIdx> = members.iter().copied().collect();
    for &m in members {
        for (n, _) in ctx.territory.neighbours(m) {
            if seen.insert(n) {
                reach.push(Reach { idx: n, hops: Some(1), weight: 0.5, same_epci: false, distance_km: None });
            }
        }
    }
    reach
}

/// The members that need something in `category` within `horizon_months` ([`need_of`]), with
/// the reason and their registered workstations, earliest deadline first (then by code).
/// `in_service`: [`in_service`] of `members` in `category`.
fn concerned_members(ctx: &Ctx, members: &[CommuneIdx], in_service: &InService, category: &Slug, horizon_months: u32) -> Vec<Concerned> {
    let basis = NeedBasis::new(ctx.catalog, ctx.today, category, horizon_months);
    let mut concerned: Vec<Concerned> = members
        .iter()
        .zip(in_service)
        .filter_map(|(&m, active)| {
            let workstations = active.iter().filter_map(|h| h.adoption.workstations).max();
            need_given(ctx, active, ctx.territory.commune(m).population, &basis).map(|need| Concerned {
                member: member(ctx, m),
                reason: reason(ctx, &need),
                need,
                workstations,
            })
        })
        .collect();
    concerned
        .sort_by(|a, b| a.need.deadline().unwrap_or(NaiveDate::MAX).cmp(&b.need.deadline().unwrap_or(NaiveDate::MAX)).then(a.member.code.cmp(&b.member.code)));
    concerned
}

/// The option of a groupement: the best-ranked generation in service in `reach` (scored with
/// `params`, nothing skipped; `picks` in rank order) that no concerned member rates poorly and
/// whose support does not end within `horizon_months` (its users would need the next purchase
/// before this one is over): its position in `picks`, `None` when there is none.
fn choose_option(ctx: &Ctx, picks: &[Pick], concerned: &[Concerned], horizon_months: u32) -> Option<usize> {
    // Never propose what a member reports as unreliable.
    let poor: HashSet<(Slug, Option<GenerationId>)> = concerned
        .iter()
        .filter_map(|c| match &c.need {
            Need::PoorRating { product, generation, .. } => Some((product.clone(), ctx.catalog.generation_key(product, generation.as_ref()))),
            _ => None,
        })
        .collect();
    // Nor an option whose support ends within the horizon: its users would need the next
    // purchase before this one is over.
    let horizon_end = ctx.today.checked_add_months(chrono::Months::new(horizon_months)).unwrap_or(NaiveDate::MAX);
    let ends_in_horizon = |i: &Pick| {
        let g = ctx.catalog.product(&i.product).ok().and_then(|p| i.generation.as_ref().and_then(|g| p.generation(g)));
        g.and_then(|g| g.end_of_support).is_some_and(|eos| eos <= horizon_end)
    };
    picks.iter().position(|i| !poor.contains(&(i.product.clone(), i.generation.clone())) && !ends_in_horizon(i))
}

/// The option chosen ([`choose_option`]) as the groupement shows it: the obligations to check
/// over the groupement's horizon (not the recommendations' margin), in its reason too.
fn group_option(ctx: &Ctx, mut option: Recommendation, category: &Slug, horizon_months: u32) -> Recommendation {
    let horizon_end = ctx.today.checked_add_months(chrono::Months::new(horizon_months)).unwrap_or(NaiveDate::MAX);
    let g = ctx.catalog.product(&option.product).ok().and_then(|p| option.generation.as_ref().and_then(|g| p.generation(g)));
    option.to_check = crate::core::recommend::compliance_to_check(ctx, category, g, None, horizon_end);
    let mut parts: Vec<String> =
        option.reason.trim_end_matches('.').split(" ; ").filter(|p| !p.starts_with("conformité à vérifier")).map(str::to_string).collect();
    parts.extend(crate::core::recommend::compliance_note(&option.to_check));
    option.reason = parts.join(" ; ") + ".";
    option
}

/// Estimated volume of a groupement: communes and population of the `concerned` members,
/// their registered workstations (sum of the known ones), the pooled amount in € HT and the
/// procedure it requires on the question's date ([`procedure_for`]), with a French note when
/// either is missing.
///
/// The amount comes from the EPCI's estimate in force for the option ([`estimate_for`] among
/// `estimates`): per commune × the communes concerned, or per seat × their declared
/// workstations, where every commune concerned declared some (otherwise the amount over those
/// that did is given as partial, and neither amount nor procedure is guessed). Without an
/// estimate, the catalogue's indicative price where it gives one (none does yet).
fn group_volume(ctx: &Ctx, option: Option<&Recommendation>, concerned: &[Concerned], estimates: &[PriceEstimate]) -> Volume {
    let population: u64 = concerned.iter().map(|c| u64::from(c.member.population)).sum();
    let known: Vec<u32> = concerned.iter().filter_map(|c| c.workstations).collect();
    let workstations = (!known.is_empty()).then(|| known.iter().map(|&w| u64::from(w)).sum());
    let estimate = option.and_then(|o| estimate_for(estimates, &o.product, o.generation.as_ref(), ctx.today));
    let missing: Vec<&Concerned> = concerned.iter().filter(|c| c.workstations.is_none()).collect();
    let per_seat_partial = estimate.is_some_and(|e| e.basis == PriceBasis::PerSeat) && !missing.is_empty();
    let amount = match estimate {
        Some(e) if e.basis == PriceBasis::PerCommune => Some(e.amount_eur_ht.times(concerned.len() as u64)),
        Some(e) => (!per_seat_partial).then(|| e.amount_eur_ht.times(workstations.unwrap_or(0))),
        None => option.and_then(|o| ctx.catalog.product(&o.product).ok()).and_then(|p| {
            p.indicative_price_eur_ht_per_commune
                .map(|x| EurHt::from_whole_euros(x).times(concerned.len() as u64))
                .or_else(|| p.indicative_price_eur_ht_per_seat.zip(workstations).map(|(x, w)| EurHt::from_whole_euros(x).times(w)))
        }),
    };
    let partial = estimate.filter(|_| per_seat_partial).map(|e| e.amount_eur_ht.times(workstations.unwrap_or(0)));
    let procedure = amount.and_then(|t| procedure_for(ctx.catalog, t.whole_euros(), ctx.today).cloned());
    let note = match (option, amount) {
        (None, _) => Some("Aucune option éprouvée à proximité : pas d'estimation.".to_string()),
        (Some(_), None) if per_seat_partial => {
            let names: Vec<&str> = missing.iter().map(|c| c.member.name.as_str()).collect();
            Some(format!(
                "Montant partiel : {} pour les communes qui ont déclaré leurs postes ; {} n'{} pas déclaré de postes : montant total et procédure à établir.",
                partial.unwrap_or_default().fr(),
                names.join(", "),
                if names.len() > 1 { "ont" } else { "a" }
            ))
        }
        (Some(_), None) => Some("Le catalogue ne donne pas de prix indicatif pour cette option : montant et procédure à établir.".to_string()),
        (Some(_), Some(_)) if procedure.is_none() => Some("Aucun seuil du catalogue ne couvre ce montant à cette date.".to_string()),
        _ => None,
    };
    Volume {
        communes: concerned.len(),
        population,
        workstations,
        estimated_amount_eur_ht: amount,
        partial_amount_eur_ht: partial,
        missing_workstations: if per_seat_partial { missing.iter().map(|c| c.member.code).collect() } else { Vec::new() },
        procedure,
        estimate: estimate.map(|e| EstimateUsed { id: e.id, amount_eur_ht: e.amount_eur_ht, basis: e.basis, made_on: e.made_on, by: e.by.clone() }),
        note,
    }
}

/// The groupement of one category for an EPCI, or `None` when no member needs anything there.
#[allow(clippy::too_many_arguments)]
fn groupement(
    ctx: &Ctx,
    epci: &Epci,
    members: &[CommuneIdx],
    in_service: &InService,
    reach: &[Reach],
    read: Option<&[(Reach, Placed)]>,
    cat: &Category,
    horizon_months: u32,
    params: &Params,
    estimates: &[PriceEstimate],
) -> Option<Groupement> {
    let concerned = concerned_members(ctx, members, in_service, &cat.slug, horizon_months);
    if concerned.is_empty() {
        return None;
    }
    let (option, picks) =
        score_and_choose(ctx, reach, read, None, &cat.slug, &fnv::FnvHashSet::default(), params, |picks| choose_option(ctx, picks, &concerned, horizon_months));
    let option = option.map(|o| group_option(ctx, o, &cat.slug, horizon_months));
    let (concerned, own_path) = split_by_path(ctx, concerned, option.as_ref(), &picks);
    if concerned.is_empty() {
        return None;
    }
    let already_on: Vec<Member> = option
        .as_ref()
        .map(|o| {
            members
                .iter()
                .zip(in_service)
                .filter(|(_, active)| active.iter().any(|h| h.is_of(&o.product, o.generation.as_ref())))
                .map(|(&m, _)| member(ctx, m))
                .collect()
        })
        .unwrap_or_default();
    let volume = group_volume(ctx, option.as_ref(), &concerned, estimates);
    let earliest_deadline = concerned.iter().filter_map(|c| c.need.deadline()).min();
    let due_together = earliest_deadline
        .map(|d0| {
            let limit = d0.checked_add_months(Months::new(6)).unwrap_or(d0);
            concerned.iter().filter(|c| c.need.deadline().is_some_and(|d| d <= limit)).map(|c| c.member.code).collect()
        })
        .unwrap_or_default();
    let coordinator = if concerned.len() >= 3 {
        format!("{} (EPCI)", epci.name)
    } else {
        concerned.iter().max_by_key(|c| (c.member.population, std::cmp::Reverse(c.member.code))).map_or_else(|| epci.name.clone(), |c| c.member.name.clone())
    };
    let value: f64 = concerned.iter().map(|c| c.need.urgency(ctx.today)).sum();
    let urgent = concerned.iter().filter(|c| c.need.urgency(ctx.today) >= 1.5).count();
    let rank_reason = format!(
        "{} commune{} concernée{}, dont {urgent} avec une échéance passée ou dans les 12 mois{}.",
        concerned.len(),
        if concerned.len() > 1 { "s" } else { "" },
        if concerned.len() > 1 { "s" } else { "" },
        earliest_deadline.map(|d| format!(" (première échéance : {})", fr::Date(d))).unwrap_or_default()
    );
    Some(Groupement {
        category: cat.slug.clone(),
        category_label: cat.label.clone(),
        option,
        concerned,
        already_on,
        volume,
        earliest_deadline,
        coordinator,
        due_together,
        value: (value * 100.0).round() / 100.0,
        rank_reason,
        own_path,
    })
}

/// Splits the members concerned into those the option is a path for, and those whose own
/// path stays in their product. A member changes product only for a stated reason: it runs
/// nothing, a poor rating, or its generation must go (support ended, an obligation it fails)
/// with no newer generation of its product in service among the members and their neighbours
/// (`picks`, every candidate of the reach). A support ending later or a contract to renew, on another product than the
/// option's, is not a reason to switch either.
fn split_by_path(ctx: &Ctx, concerned: Vec<Concerned>, option: Option<&Recommendation>, picks: &[Pick]) -> (Vec<Concerned>, Vec<Concerned>) {
    let Some(o) = option else { return (concerned, Vec::new()) };
    let successor_in_reach = |product: &Slug, generation: &Option<GenerationId>| {
        let Ok(p) = ctx.catalog.product(product) else { return false };
        let Some(g) = generation.as_ref().and_then(|g| p.generation(g)) else { return false };
        picks.iter().any(|i| &i.product == product && i.generation.as_ref().and_then(|x| p.generation(x)).is_some_and(|h| h.order > g.order))
    };
    concerned.into_iter().partition(|c| match &c.need {
        Need::NoProduct | Need::PoorRating { .. } => true,
        Need::EndOfSupport { product, generation, .. } | Need::Regulation { product, generation, .. } => {
            product == &o.product || !successor_in_reach(product, generation)
        }
        Need::EndsSoon { product, .. } | Need::ContractEnds { product, .. } => product == &o.product,
    })
}

/// Suggests groupements for an EPCI, without price estimates (no amount, no procedure).
/// Errors: `NotFound` for an unknown SIREN, `Invalid` for a horizon outside 1-120 months.
pub fn pooled_purchases(ctx: &Ctx, siren: &Siren, horizon_months: u32) -> Result<PooledPurchases> {
    pooled_purchases_with(ctx, siren, horizon_months, &[])
}

/// Suggests groupements for an EPCI, each groupement (and need of one commune) priced with the
/// EPCI's estimate in force for its option on `ctx.today` (`estimates`: the EPCI's; others'
/// are ignored), see [`Volume`]. Errors: `NotFound` for an unknown SIREN, `Invalid` for a
/// horizon outside 1-120 months.
pub fn pooled_purchases_with(ctx: &Ctx, siren: &Siren, horizon_months: u32, estimates: &[PriceEstimate]) -> Result<PooledPurchases> {
    let own: Vec<PriceEstimate> = estimates.iter().filter(|e| &e.epci == siren).cloned().collect();
    if !(1..=120).contains(&horizon_months) {
        return Err(Error::Invalid(format!("horizon must be 1 to 120 months, got {horizon_months}")));
    }
    let epci = ctx.territory.epci(siren)?;
    let members = ctx.territory.members(siren);
    let reach = group_reach(ctx, members);
    let params = Params::default();
    // Category by category: the adoptions of the reach, read once for the members' needs and
    // the scoring (when the reach is read commune by commune; else the members are read apart),
    // then the groupement, while what was read (the adoptions, their kept sums) is still in the
    // processor's caches.
    let mut in_service_by_category: Vec<InService> = Vec::with_capacity(ctx.catalog.categories.len());
    let mut groupements: Vec<Groupement> = Vec::new();
    for cat in &ctx.catalog.categories {
        let read = read_reach(ctx, &reach, &cat.slug);
        let lists = match &read {
            Some(read) => members_in_read(ctx, members, read),
            None => in_service(ctx, members, &cat.slug),
        };
        groupements.extend(groupement(ctx, epci, members, &lists, &reach, read.as_deref(), cat, horizon_months, &params, &own));
        in_service_by_category.push(lists);
    }
    let order: Vec<&Slug> = ctx.catalog.categories.iter().map(|c| &c.slug).collect();
    let pos = |s: &Slug| order.iter().position(|x| *x == s).unwrap_or(usize::MAX);
    groupements.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then(a.earliest_deadline.unwrap_or(NaiveDate::MAX).cmp(&b.earliest_deadline.unwrap_or(NaiveDate::MAX)))
            .then(pos(&a.category).cmp(&pos(&b.category)))
    });
    // A need met by a free update in place is no need here (needs are per generation); a need
    // of one commune alone is its own purchase.
    let (groupements, single_needs) = groupements.into_iter().partition(|g| g.concerned.len() >= 2);
    let to_check = members_to_check(ctx, members, &in_service_by_category, horizon_months);
    Ok(PooledPurchases {
        epci: epci.siren,
        name: epci.name.clone(),
        as_of: ctx.today,
        horizon_months,
        members_in_scope: members.len(),
        groupements,
        single_needs,
        to_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog::tests::small as small_catalog;
    use crate::core::history::{Adoption, AdoptionIndex, Feedback};
    use crate::core::territory::tests::small as small_territory;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn needs_option_order_and_timetable() {
        let (t, c) = (small_territory(), small_catalog());
        let mut h = AdoptionIndex::default();
        let mk = |id: u64, code: &str, g: &str, contract_end: Option<NaiveDate>| Adoption {
            id,
            commune: InseeCode::parse(code).unwrap(),
            category: Slug::parse("site-web").unwrap(),
            product: Slug::parse("cms").unwrap(),
            generation: Some(GenerationId::parse(g).unwrap()),
            since: d("2017-01-01"),
            until: None,
            contract_end,
            workstations: Some(3),
            simulated: true,
        };
        h.add_adoption(mk(1, "35001", "1", None)); // A: ended 2018-01-01
        h.add_adoption(mk(2, "35002", "2", None)); // B: supported, poorly rated below
        h.add_adoption(mk(3, "35004", "2", Some(d("2026-06-30")))); // D (other EPCI, neighbour of C)
        h.add_adoption(mk(4, "35003", "2", Some(d("2026-09-30")))); // C: contract ends within the horizon
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
        let p = pooled_purchases(&ctx, &Siren::parse("200000001").unwrap(), 24).unwrap();
        assert_eq!(p.members_in_scope, 3);
        let web = p.groupements.iter().find(|g| g.category.as_str() == "site-web").unwrap();
        let needs: Vec<_> = web.concerned.iter().map(|c| (c.member.code.as_str(), c.need.clone())).collect();
        assert_eq!(needs.len(), 3);
        assert!(matches!(&needs[0].1, Need::EndOfSupport { date: Some(x), .. } if *x == d("2018-01-01")), "earliest deadline first");
        assert!(matches!(&needs[1].1, Need::ContractEnds { date, .. } if *date == d("2026-09-30")));
        assert!(matches!(&needs[2].1, Need::PoorRating { n: 2, .. }));
        assert_eq!(web.earliest_deadline, Some(d("2018-01-01")));
        assert_eq!(web.due_together.iter().map(|c| c.as_str()).collect::<Vec<_>>(), vec!["35001"]);
        // cms 2 is what B rates poorly: never proposed; nothing else is in service nearby.
        assert!(web.option.is_none());
        assert_eq!(web.coordinator, "CC Un (EPCI)");
        assert_eq!((web.volume.communes, web.volume.population, web.volume.workstations), (3, 5500, Some(9)));
        // value = 2 (past end of support) + 1.5 (contract ends within 12 months) + 0.75 (poor rating).
        assert!((web.value - (2.0 + 1.5 + 0.75)).abs() < 1e-9, "{}", web.value);
        // paie-rh: nobody runs anything: 3 members, value 3; site-web comes first (4.25).
        assert_eq!(p.groupements[0].category.as_str(), "site-web");
        assert!(pooled_purchases(&ctx, &Siren::parse("200000001").unwrap(), 0).is_err());
        assert!(pooled_purchases(&ctx, &Siren::parse("200000009").unwrap(), 24).is_err());
    }

    /// An obligation makes a need only for the members it applies to: the catalogue states
    /// that cms 2 fails `big` (site web, communes of 3,501 inhabitants or more, 2022-01-01), so
    /// C (4,000) needs a change and B (1,200), running the same generation, needs none; once
    /// the horizon ends before the obligation's date (asked in 2021 with 6 months), C needs none
    /// either.
    #[test]
    fn an_obligation_makes_a_need_only_for_the_members_it_applies_to() {
        let c = crate::core::catalog::Catalog::from_texts(&crate::core::catalog::CatalogTexts {
            categories: "[[category]]\nslug='site-web'\nlabel='Site web'\nkind='software'\n",
            products: "[[product]]\nid='cms'\nname='CMS'\ncategories=['site-web']\n",
            generations: "[[generation]]\nproduct='cms'\nid='2'\nlabel='2'\norder=2\nreleased='2016-01-01'\nend_of_support='2030-01-01'\nfails=['big']\n",
            regulations: "[[regulation]]\nid='big'\ndate='2022-01-01'\ntitle='Grand site'\ncategories=['site-web']\nmin_population=3501\n",
            procurement: "[[threshold]]\nid='a'\nprocedure='p'\napplies_to='supplies_services'\nfrom_eur_ht=0\nbelow_eur_ht=40000\nvalid_from='2020-01-01'\nreference='R2122-8'\n",
        })
        .unwrap();
        let t = small_territory();
        let mut h = AdoptionIndex::default();
        for (id, code) in [(1, "35002"), (2, "35003")] {
            h.add_adoption(Adoption {
                id,
                commune: InseeCode::parse(code).unwrap(),
                category: Slug::parse("site-web").unwrap(),
                product: Slug::parse("cms").unwrap(),
                generation: Some(GenerationId::parse("2").unwrap()),
                since: d("2017-01-01"),
                until: None,
                contract_end: None,
                workstations: None,
                simulated: true,
            });
        }
        let web = Slug::parse("site-web").unwrap();
        let need = |today: &str, code: &str, months: u32| need_of(&Ctx::new(&t, &c, &h, d(today)), &InseeCode::parse(code).unwrap(), &web, months);
        assert_eq!(
            need("2026-01-01", "35003", 24),
            Some(Need::Regulation {
                product: Slug::parse("cms").unwrap(),
                generation: Some(GenerationId::parse("2").unwrap()),
                rule: "Grand site".into(),
                date: d("2022-01-01")
            })
        );
        assert_eq!(need("2026-01-01", "35002", 24), None);
        assert!(matches!(need("2021-11-01", "35003", 2), Some(Need::Regulation { .. })), "taking effect within the horizon");
        assert_eq!(need("2021-01-01", "35003", 6), None, "taking effect after the horizon");
        // The same in the pooled purchases: C is concerned (the earliest deadline first) with A,
        // which runs nothing; B is not.
        let p = pooled_purchases(&Ctx::new(&t, &c, &h, d("2026-01-01")), &Siren::parse("200000001").unwrap(), 24).unwrap();
        let concerned: Vec<_> =
            p.groupements.iter().chain(&p.single_needs).flat_map(|g| g.concerned.iter().map(|x| (x.member.code.to_string(), x.reason.clone()))).collect();
        assert_eq!(
            concerned,
            [
                ("35003".to_string(), "CMS 2 n'est plus supporté avant l'obligation « Grand site » (1er janvier 2022).".to_string()),
                ("35001".to_string(), "Aucun produit déclaré dans cette catégorie.".to_string())
            ]
        );
    }

    /// The EPCI's estimate prices the groupement: per commune × communes concerned, per seat ×
    /// declared workstations (partial, with no procedure, when a commune declared none), the
    /// procedure from the thresholds; another EPCI's estimate, or one made after the date, is
    /// not used.
    #[test]
    fn estimates_price_the_groupement() {
        use crate::core::prices::tests::estimate;
        let (t, c) = (small_territory(), small_catalog());
        let index = |c_workstations: Option<u32>| {
            let mut h = AdoptionIndex::default();
            let mk = |id: u64, code: &str, g: &str, workstations: Option<u32>| Adoption {
                id,
                commune: InseeCode::parse(code).unwrap(),
                category: Slug::parse("site-web").unwrap(),
                product: Slug::parse("cms").unwrap(),
                generation: Some(GenerationId::parse(g).unwrap()),
                since: d("2017-01-01"),
                until: None,
                contract_end: None,
                workstations,
                simulated: false,
            };
            // A, B and C run cms 1 (support ended 2018-01-01); D, their neighbour in another EPCI, cms 2.
            h.add_adoption(mk(1, "35001", "1", Some(3)));
            h.add_adoption(mk(2, "35002", "1", Some(5)));
            h.add_adoption(mk(3, "35003", "1", c_workstations));
            h.add_adoption(mk(4, "35004", "2", Some(40)));
            h
        };
        let cc_un = Siren::parse("200000001").unwrap();
        let web = |h: &AdoptionIndex, estimates: &[PriceEstimate]| {
            let ctx = Ctx::new(&t, &c, h, d("2026-01-01"));
            let p = pooled_purchases_with(&ctx, &cc_un, 24, estimates).unwrap();
            p.groupements.into_iter().find(|g| g.category.as_str() == "site-web").unwrap()
        };
        let full = index(Some(4));
        // No estimate: today's wording, no amount, no procedure.
        let g = web(&full, &[]);
        assert_eq!(g.option.as_ref().map(|o| (o.product.as_str(), o.generation.as_ref().map(|g| g.as_str()))), Some(("cms", Some("2"))));
        assert_eq!((g.volume.communes, g.volume.workstations, g.volume.estimated_amount_eur_ht), (3, Some(12), None));
        assert!(g.volume.procedure.is_none() && g.volume.estimate.is_none());
        assert!(g.volume.note.as_deref().unwrap().contains("montant et procédure à établir"));
        // Per seat: 100 € × (3 + 5 + 4) seats = 1,200 € HT, below 40,000: row 'a'.
        let per_seat = estimate(7, "cms", Some("2"), PriceBasis::PerSeat, 100, "2025-12-01");
        let g = web(&full, std::slice::from_ref(&per_seat));
        assert_eq!(g.volume.estimated_amount_eur_ht, Some(EurHt::from_whole_euros(1_200)));
        assert_eq!(g.volume.procedure.as_ref().map(|p| p.id.as_str()), Some("a"));
        let used = g.volume.estimate.unwrap();
        assert_eq!((used.id, used.basis, used.made_on, used.by.name.as_str()), (7, PriceBasis::PerSeat, d("2025-12-01"), "CC Un"));
        assert!(g.volume.note.is_none());
        // C declared no workstations: the amount over A and B is partial, nothing guessed.
        let g = web(&index(None), std::slice::from_ref(&per_seat));
        assert_eq!((g.volume.estimated_amount_eur_ht, g.volume.partial_amount_eur_ht), (None, Some(EurHt::from_whole_euros(800))));
        assert_eq!(g.volume.missing_workstations.iter().map(|c| c.as_str()).collect::<Vec<_>>(), vec!["35003"]);
        assert!(g.volume.procedure.is_none());
        assert_eq!(
            g.volume.note.as_deref(),
            Some(
                "Montant partiel : 800 € HT pour les communes qui ont déclaré leurs postes ; C n'a pas déclaré de postes : montant total et procédure à établir."
            )
        );
        // Per commune: 10,000 € × 3 communes = 30,000 € HT (row 'a'); 15,000 € × 3 = 45,000, which
        // no row of the small catalogue covers. A product-wide estimate applies to generation 2.
        let g = web(&full, &[estimate(8, "cms", None, PriceBasis::PerCommune, 10_000, "2025-12-01")]);
        assert_eq!((g.volume.estimated_amount_eur_ht, g.volume.procedure.map(|p| p.id)), (Some(EurHt::from_whole_euros(30_000)), Some("a".to_string())));
        let g = web(&full, &[estimate(8, "cms", None, PriceBasis::PerCommune, 15_000, "2025-12-01")]);
        assert_eq!(g.volume.estimated_amount_eur_ht, Some(EurHt::from_whole_euros(45_000)));
        assert!(g.volume.procedure.is_none());
        assert_eq!(g.volume.note.as_deref(), Some("Aucun seuil du catalogue ne couvre ce montant à cette date."));
        // Made after the question's date, for another generation, or by another EPCI: not used.
        let mut other = estimate(9, "cms", None, PriceBasis::PerCommune, 10_000, "2025-12-01");
        other.epci = Siren::parse("200000002").unwrap();
        for e in [
            estimate(8, "cms", None, PriceBasis::PerCommune, 10_000, "2026-01-02"),
            estimate(8, "cms", Some("3"), PriceBasis::PerCommune, 10_000, "2025-12-01"),
            other,
        ] {
            assert!(web(&full, &[e]).volume.estimate.is_none());
        }
    }

    #[test]
    fn procedure_from_dated_thresholds() {
        let cat = crate::seeds::catalog().unwrap();
        let on = d("2026-06-01");
        assert_eq!(procedure_for(&cat, 30_000, on).unwrap().reference, "R2122-8; décret 2025-1386");
        assert!(procedure_for(&cat, 60_000, on).unwrap().procedure.contains("MAPA"));
        assert!(procedure_for(&cat, 100_000, on).unwrap().procedure.contains("BOAMP"));
        assert!(procedure_for(&cat, 216_000, on).unwrap().procedure.contains("formalisée"));
        // In 2025 the formal threshold was 221,000 € HT.
        assert!(procedure_for(&cat, 218_000, d("2025-06-01")).unwrap().procedure.contains("MAPA"));
    }

    /// The threshold below which no publicity is required rose from 40,000 to 60,000 € HT on
    /// 2026-04-01 (R2122-8, décret 2025-1386; `catalog-facts.md`): a 50,000 € HT need is a MAPA
    /// the day before and needs no publicity from that day.
    #[test]
    fn no_publicity_threshold_rises_on_1_april_2026() {
        let cat = crate::seeds::catalog().unwrap();
        let mapa = "Procédure adaptée (MAPA), sans publication obligatoire au BOAMP ou dans un JAL";
        let none = "Marché sans publicité ni mise en concurrence préalables";
        for (date, amount, procedure, id) in [
            ("2026-03-15", 50_000, mapa, "mapa-fournitures-services"),
            ("2026-03-31", 50_000, mapa, "mapa-fournitures-services"),
            ("2026-04-01", 50_000, none, "dispense-fournitures-services-2026"),
            ("2026-04-15", 50_000, none, "dispense-fournitures-services-2026"),
            ("2026-03-15", 39_999, none, "dispense-fournitures-services"),
            ("2026-04-15", 59_999, none, "dispense-fournitures-services-2026"),
            ("2026-04-15", 60_000, mapa, "mapa-fournitures-services-2026"),
            ("2026-04-15", 90_000, "Procédure adaptée (MAPA) avec publication au BOAMP ou dans un JAL", "mapa-publicite-fournitures-services-2026"),
        ] {
            let t = procedure_for(&cat, amount, d(date)).unwrap();
            assert_eq!((t.procedure.as_str(), t.id.as_str()), (procedure, id), "{amount} € HT on {date}");
        }
        // Rows never overlap: on each day, an amount falls in at most one row.
        for date in ["2020-01-01", "2024-01-01", "2025-12-31", "2026-01-01", "2026-03-31", "2026-04-01", "2027-12-31"] {
            for amount in [0, 39_999, 40_000, 59_999, 60_000, 89_999, 90_000, 215_999, 216_000, 220_999, 221_000, 10_000_000] {
                let rows = cat
                    .thresholds
                    .iter()
                    .filter(|t| {
                        t.applies_to == "supplies_services"
                            && t.valid_from <= d(date)
                            && t.valid_until.is_none_or(|u| d(date) <= u)
                            && t.from_eur_ht <= amount
                            && t.below_eur_ht.is_none_or(|b| amount < b)
                    })
                    .count();
                assert!(rows <= 1, "{amount} € HT on {date}: {rows} rows");
                if date >= "2024-01-01" {
                    assert_eq!(rows, 1, "{amount} € HT on {date}: no row");
                }
            }
        }
    }

    /// The members' adoptions in service taken from their reach's read ([`members_in_read`])
    /// are those read member by member ([`in_service`]), in the same order, for every Breton
    /// EPCI × category of the demo history where the reach is read commune by commune.
    #[test]
    fn the_members_read_with_their_reach_are_those_read_apart() {
        use crate::core::simulate::{SimParams, simulate};
        let (t, c) = (crate::seeds::territory().unwrap(), crate::seeds::catalog().unwrap());
        let today = d("2026-11-29");
        let demo = simulate(&t, &c, &SimParams::new(2026, today));
        let mut h = AdoptionIndex::default();
        demo.adoptions.into_iter().for_each(|a| h.add_adoption(a));
        let ctx = Ctx::new(&t, &c, &h, today);
        let ids = |lists: &InService| lists.iter().map(|l| l.iter().map(|x| x.adoption.id).collect::<Vec<_>>()).collect::<Vec<_>>();
        let (mut compared, mut held) = (0, 0);
        for epci in t.epcis() {
            let members = t.members(&epci.siren);
            let reach = group_reach(&ctx, members);
            for cat in &c.categories {
                let Some(read) = read_reach(&ctx, &reach, &cat.slug) else { continue };
                let apart = in_service(&ctx, members, &cat.slug);
                assert_eq!(ids(&members_in_read(&ctx, members, &read)), ids(&apart), "{} {}", epci.siren, cat.slug);
                compared += 1;
                held += apart.iter().map(|l| l.len()).sum::<usize>();
            }
        }
        assert!(compared > 500 && held > 10_000, "{compared} compared, {held} adoptions");
    }
}
