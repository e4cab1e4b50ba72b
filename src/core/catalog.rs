//! The product catalogue: categories, products, generations, regulatory dates and procurement
//! thresholds, parsed from the TOML files of `catalog/` (embedded in the binary by default).
//!
//! Sources: `shared/catalog-facts.md` (hand-copied into `products.toml`, `regulations.toml`,
//! `procurement.toml`) and endoflife.date (imported into `generations.toml`). A fact the
//! sources do not give is `None`, never guessed.

use std::hash::Hasher;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::core::domain::{GenerationId, Slug};
use crate::error::{Error, Result};

/// A category of software or equipment (`etat-civil`, `poste-de-travail`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Category {
    /// Identifier used in the API.
    pub slug: Slug,
    /// French label for the page (`État civil`).
    pub label: String,
    /// `business software`, `software`, `equipment/firmware` or `equipment/service`.
    pub kind: String,
}

/// How a product's releases group into generations: the unit a commune migrates to or buys
/// (Windows 10 / Windows 11; Office 2019 / 2021 / 2024; Drupal 10 / 11), as opposed to a
/// release (a feature update, a minor version, a patch branch), which is updated in place with
/// no purchase and no data migration. Catalogue data: `generation_rule` in `products.toml`,
/// with its source in `generation_rule_source`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GenerationRule {
    /// Each release cycle is a generation (Office 2019 / 2021 / 2024, Debian 12 / 13, hand-typed
    /// generations). The default.
    #[default]
    Cycle,
    /// The cycle's text before its first `.` (Drupal `10.4` → `10`, VMware ESXi `8.0` → `8`).
    Major,
    /// The cycle's text before its first `-` (Windows `11-24h2-w` → `11`).
    BeforeDash,
    /// The whole product line is one generation, updated in place (Chrome, Firefox,
    /// LibreOffice, WordPress, firewall firmware); its id is [`WHOLE_LINE`]. Each release's
    /// support ends when later ones come, so the line's own end is not known from release dates
    /// (a snapshot of them always ends a few months ahead): no end known. Nor is its start: the
    /// sources list a recent window of releases, not the line's first, so the line has no
    /// release date (its releases keep theirs).
    Line,
}

/// Id of the one generation of a product whose rule is [`GenerationRule::Line`].
pub const WHOLE_LINE: &str = "all";

/// One generation (major version, release cycle or technology) of a product, or one release of
/// a generation (the same shape: [`Product::releases`] and [`Product::generations`]).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Generation {
    /// Identifier within the product (`24.8`, `11-24h2-w`, `ftth`; a generation built by a
    /// rule: `11`, `10`, `all`).
    pub id: GenerationId,
    /// Display label.
    pub label: String,
    /// Rank within the product, 1 = oldest.
    pub order: u32,
    /// Release date where known (endoflife.date `releaseDate`).
    #[serde(default)]
    pub released: Option<NaiveDate>,
    /// Year-month of the oldest documentation found (`2013-09`), where the facts give only that.
    #[serde(default)]
    pub documented_since: Option<String>,
    /// End of support where known (endoflife.date `eol` date).
    #[serde(default)]
    pub end_of_support: Option<NaiveDate>,
    /// Support has ended but the source gives no date.
    #[serde(default)]
    pub eol_undated: bool,
    /// Long-term support release.
    #[serde(default)]
    pub lts: bool,
    /// A documented phase-out with no single end date (the RTC network closed by lots from
    /// 2023 to 2030): the generation is not recommended.
    #[serde(default)]
    pub phase_out: Option<String>,
    /// Where the facts come from.
    #[serde(default)]
    pub source: Option<String>,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// Regulations (ids of `regulations.toml`) that the sources say it meets. Empty when they
    /// do not say: compliance is then "to check", never guessed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meets: Vec<String>,
    /// Regulations that the sources say it does not meet (it is then left out before the
    /// rule's date).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fails: Vec<String>,
    /// For a generation: the ids of its releases, oldest first (empty for a release).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<GenerationId>,
    /// For a generation: it is the whole product line ([`GenerationRule::Line`]); its label is
    /// then not shown after the product's name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_line: bool,
}

/// A product: software, firmware or a connectivity technology.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    /// Identifier (`libreoffice`).
    pub id: Slug,
    /// Display name (`LibreOffice`).
    pub name: String,
    /// Vendor where the sources name one.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Categories it serves; the first is its main category.
    pub categories: Vec<Slug>,
    /// `Some(true)` where the sources say it is free software.
    #[serde(default)]
    pub free_software: Option<bool>,
    /// Where the entry comes from.
    #[serde(default)]
    pub source: Option<String>,
    /// Free note (French).
    #[serde(default)]
    pub note: Option<String>,
    /// A building block or add-on (database, runtime, audience counter, mobile OS), not what a
    /// commune chooses for the category: the demo simulator does not adopt it.
    #[serde(default)]
    pub component: bool,
    /// Indicative price per commune, € HT over a contract, where a source gives one (none does
    /// yet: `catalog-facts.md` has no prices).
    #[serde(default)]
    pub indicative_price_eur_ht_per_commune: Option<u64>,
    /// Indicative price per workstation (seat), € HT over a contract, where a source gives one.
    #[serde(default)]
    pub indicative_price_eur_ht_per_seat: Option<u64>,
    /// Name of the endoflife.date file its releases were imported from.
    #[serde(default)]
    pub lifecycle: Option<String>,
    /// How its releases group into generations.
    #[serde(default)]
    pub generation_rule: GenerationRule,
    /// Why this rule (the source that says what is bought or migrated, and what is updated in
    /// place).
    #[serde(default)]
    pub generation_rule_source: Option<String>,
    /// Known releases (endoflife.date cycles, or hand-typed generations), sorted by `order`.
    #[serde(default, rename(deserialize = "generation"))]
    pub releases: Vec<Generation>,
    /// Generations built from the releases by `generation_rule`, sorted by `order` (1 =
    /// oldest). Empty when the sources give no release: adoptions may then name any generation
    /// (or none). Computed, never read from a file (a `generations` key there is ignored).
    #[serde(default, deserialize_with = "computed")]
    pub generations: Vec<Generation>,
    /// Per generation id, then per release id not already there, the position in
    /// `generations` of the generation it names or belongs to (the first that lists it), as
    /// [`Product::generation`] reads it; built with `generations` by [`Catalog::from_texts`].
    #[serde(skip)]
    generation_idx: fnv::FnvHashMap<GenerationId, usize>,
    /// Per generation (the positions of `generations`), the positions in `releases` of its
    /// releases, oldest first ([`Product::releases_of`]); built with `generations`.
    #[serde(skip)]
    release_positions: Vec<Box<[u32]>>,
}

/// A field that is computed, never read: whatever a file holds under its name is ignored.
/// (Rather than `skip_deserializing`, which would also drop the field from the OpenAPI schema
/// of the answers that serialise it.)
fn computed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Generation>, D::Error> {
    serde::de::IgnoredAny::deserialize(d)?;
    Ok(Vec::new())
}

/// Support status of a generation at a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", content = "date", rename_all = "snake_case")]
pub enum Support {
    /// Supported, with a known end date more than 12 months ahead.
    Supported(NaiveDate),
    /// Supported, no end date known.
    NoEndKnown(()),
    /// End of support within 12 months (the date).
    EndsSoon(NaiveDate),
    /// Past end of support (the date).
    Ended(NaiveDate),
    /// Past end of support, date unknown.
    EndedUndated(()),
}

impl Support {
    /// Whether the generation is past end of support.
    pub fn is_ended(&self) -> bool {
        matches!(self, Support::Ended(_) | Support::EndedUndated(_))
    }
}

/// A dated regulatory obligation that can make a generation obsolete.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Regulation {
    /// Identifier (`dsn`, `platau`).
    pub id: String,
    /// Date it applies from.
    pub date: NaiveDate,
    /// French title.
    pub title: String,
    /// Categories concerned.
    pub categories: Vec<Slug>,
    /// Applies only to communes with at least this population (inclusive).
    #[serde(default)]
    pub min_population: Option<u32>,
    /// Applies only to communes with at most this population (inclusive).
    #[serde(default)]
    pub max_population: Option<u32>,
    /// The facts mark this line "(check)".
    #[serde(default)]
    pub to_check: bool,
    /// Source.
    #[serde(default)]
    pub source: Option<String>,
    /// Note.
    #[serde(default)]
    pub note: Option<String>,
}

/// A procurement threshold (Code de la commande publique), as dated data.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Threshold {
    /// Identifier.
    pub id: String,
    /// French name of the procedure.
    pub procedure: String,
    /// `supplies_services` or `works`.
    pub applies_to: String,
    /// Lower bound, € HT, inclusive.
    pub from_eur_ht: u64,
    /// Upper bound, € HT, exclusive; `None` = no upper bound.
    #[serde(default)]
    pub below_eur_ht: Option<u64>,
    /// First day it applies.
    pub valid_from: NaiveDate,
    /// Last day it applies; `None` = open-ended.
    #[serde(default)]
    pub valid_until: Option<NaiveDate>,
    /// Legal reference (`R2122-8`).
    pub reference: String,
    /// The facts mark this figure "(check)".
    #[serde(default)]
    pub to_check: bool,
}

/// The text of the five catalogue files.
pub struct CatalogTexts<'a> {
    /// `categories.toml`
    pub categories: &'a str,
    /// `products.toml`
    pub products: &'a str,
    /// `generations.toml` (derived from endoflife.date by the importer)
    pub generations: &'a str,
    /// `regulations.toml`
    pub regulations: &'a str,
    /// `procurement.toml`
    pub procurement: &'a str,
}

#[derive(Deserialize)]
struct CategoriesFile {
    category: Vec<Category>,
}
#[derive(Deserialize)]
struct ProductsFile {
    product: Vec<Product>,
}
#[derive(Deserialize)]
struct GenerationsFile {
    #[serde(default)]
    generation: Vec<ImportedGeneration>,
}
#[derive(Deserialize)]
struct ImportedGeneration {
    product: Slug,
    #[serde(flatten)]
    generation: Generation,
}
#[derive(Deserialize)]
struct RegulationsFile {
    regulation: Vec<Regulation>,
}
#[derive(Deserialize)]
struct ProcurementFile {
    threshold: Vec<Threshold>,
}

/// The whole catalogue, validated.
#[derive(Debug)]
pub struct Catalog {
    /// Categories in display order.
    pub categories: Vec<Category>,
    /// Products, in file order.
    pub products: Vec<Product>,
    /// Regulatory dates.
    pub regulations: Vec<Regulation>,
    /// Procurement thresholds.
    pub thresholds: Vec<Threshold>,
    /// Content hash of the five files (16 hex digits, FNV-1a 64): changes when any file does.
    pub version: String,
    product_idx: fnv::FnvHashMap<Slug, usize>,
}

fn parse<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Data(format!("catalog/{name}: {e}")))
}

impl Catalog {
    /// Parses and cross-checks the catalogue: unique ids, known category slugs, generations
    /// attached to known products with unique ids. Errors: `Error::Data`.
    pub fn from_texts(t: &CatalogTexts) -> Result<Self> {
        let categories = parse::<CategoriesFile>("categories.toml", t.categories)?.category;
        let mut products = parse::<ProductsFile>("products.toml", t.products)?.product;
        let imported = parse::<GenerationsFile>("generations.toml", t.generations)?.generation;
        let regulations = parse::<RegulationsFile>("regulations.toml", t.regulations)?.regulation;
        let thresholds = parse::<ProcurementFile>("procurement.toml", t.procurement)?.threshold;
        let mut product_idx = fnv::FnvHashMap::default();
        for (i, p) in products.iter().enumerate() {
            if product_idx.insert(p.id.clone(), i).is_some() {
                return Err(Error::Data(format!("catalog: product {} listed twice", p.id)));
            }
        }
        for g in imported {
            let i = *product_idx.get(&g.product).ok_or_else(|| Error::Data(format!("generations.toml: unknown product {}", g.product)))?;
            products[i].releases.push(g.generation);
        }
        let known = |s: &Slug| categories.iter().any(|c| &c.slug == s);
        for p in &mut products {
            p.releases.sort_by_key(|g| g.order);
            if p.categories.is_empty() || !p.categories.iter().all(known) {
                return Err(Error::Data(format!("catalog: product {} has no or unknown categories", p.id)));
            }
            for (k, g) in p.releases.iter().enumerate() {
                if p.releases[..k].iter().any(|h| h.id == g.id) {
                    return Err(Error::Data(format!("catalog: generation {} of {} listed twice", g.id, p.id)));
                }
            }
            p.generations = group_releases(&p.releases, p.generation_rule)?;
            p.generation_idx = fnv::FnvHashMap::default();
            for (k, g) in p.generations.iter().enumerate() {
                p.generation_idx.entry(g.id.clone()).or_insert(k);
            }
            for (k, g) in p.generations.iter().enumerate() {
                for r in &g.releases {
                    p.generation_idx.entry(r.clone()).or_insert(k);
                }
            }
            p.release_positions = p
                .generations
                .iter()
                .map(|g| p.releases.iter().enumerate().filter(|(_, r)| g.releases.contains(&r.id)).map(|(k, _)| k as u32).collect())
                .collect();
        }
        if let Some(r) = regulations.iter().find(|r| !r.categories.iter().all(known)) {
            return Err(Error::Data(format!("regulations.toml: {} names an unknown category", r.id)));
        }
        let mut h = fnv::FnvHasher::default();
        for s in [t.categories, t.products, t.generations, t.regulations, t.procurement] {
            h.write(s.as_bytes());
            h.write_u8(0);
        }
        Ok(Catalog { categories, products, regulations, thresholds, version: format!("{:016x}", h.finish()), product_idx })
    }

    /// A category by slug, or `Error::NotFound`.
    pub fn category(&self, slug: &Slug) -> Result<&Category> {
        self.categories.iter().find(|c| &c.slug == slug).ok_or_else(|| Error::NotFound(format!("no category '{slug}' in the catalogue")))
    }

    /// A product by id, or `Error::NotFound`.
    pub fn product(&self, id: &Slug) -> Result<&Product> {
        self.product_idx.get(id).map(|&i| &self.products[i]).ok_or_else(|| Error::NotFound(format!("no product '{id}' in the catalogue")))
    }

    /// Products serving a category, in file order.
    pub fn products_in<'a>(&'a self, category: &'a Slug) -> impl Iterator<Item = &'a Product> + 'a {
        self.products.iter().filter(move |p| p.categories.contains(category))
    }

    /// Display string of a product generation or release: `"{product name} {label}"`
    /// (`"Microsoft Windows 11"`, `"Microsoft Windows 11 24H2 (W)"` for a release), the product
    /// name alone when `generation` is `None` or the whole product line (`"Google Chrome"`). An
    /// unknown product shows its slug instead of its name, an unknown generation its id instead
    /// of its label (`"cms 7"`); never fails.
    pub fn label(&self, product: &Slug, generation: Option<&GenerationId>) -> String {
        let p = self.product(product).ok();
        let name = p.map_or_else(|| product.to_string(), |p| p.name.clone());
        let Some(g) = generation else { return name };
        match p.and_then(|p| p.generations.iter().find(|x| &x.id == g).or_else(|| p.release(g))) {
            Some(x) if x.whole_line => name,
            Some(x) => format!("{name} {}", x.label),
            None => format!("{name} {g}"),
        }
    }

    /// The generation an adoption's generation id stands for: the generation itself, the
    /// generation of a release (`11-24h2-w` → `11`), or the id as given for a product whose
    /// generations the catalogue does not list. `None` when `id` is `None` or the product is
    /// unknown.
    pub fn generation_key(&self, product: &Slug, id: Option<&GenerationId>) -> Option<GenerationId> {
        let id = id?;
        let p = self.product(product).ok()?;
        if p.generations.is_empty() {
            return Some(id.clone());
        }
        Some(p.generation(id).map_or_else(|| id.clone(), |g| g.id.clone()))
    }

    /// Regulations of a category that apply to a commune of `population`; for `None` (a group
    /// of communes), those without a population bound.
    pub fn regulations_applying<'c: 's, 's>(&'c self, category: &'s Slug, population: Option<u32>) -> impl Iterator<Item = &'c Regulation> + 's {
        self.regulations_of(category).filter(move |r| r.applies_to(population))
    }

    /// Regulations of a category, whatever the population, in catalogue order.
    pub fn regulations_of<'c: 's, 's>(&'c self, category: &'s Slug) -> impl Iterator<Item = &'c Regulation> + 's {
        self.regulations.iter().filter(move |r| r.categories.contains(category))
    }
}

impl Regulation {
    /// Whether it applies to a commune of `population` inhabitants (its bounds inclusive);
    /// with `None` (the population unknown, or a question about no commune in particular),
    /// only when it has no bound.
    pub fn applies_to(&self, population: Option<u32>) -> bool {
        match population {
            Some(p) => self.min_population.is_none_or(|m| p >= m) && self.max_population.is_none_or(|m| p <= m),
            None => self.min_population.is_none() && self.max_population.is_none(),
        }
    }
}

impl Product {
    /// A known generation by its id, or the generation of a known release.
    /// One hash lookup ([`Catalog::from_texts`] indexes every id), not a scan of the releases.
    pub fn generation(&self, id: &GenerationId) -> Option<&Generation> {
        self.generation_idx.get(id).map(|&k| &self.generations[k])
    }

    /// A known release by id.
    pub fn release(&self, id: &GenerationId) -> Option<&Generation> {
        self.releases.iter().find(|g| &g.id == id)
    }

    /// The releases of a generation, oldest first: for one of `generations`, read at the
    /// positions kept for it; for another value (a copy, a release), found by scanning the
    /// releases for the ids it lists.
    pub fn releases_of<'a>(&'a self, g: &'a Generation) -> impl DoubleEndedIterator<Item = &'a Generation> + 'a {
        let kept = self.kept_positions(g);
        let (positions, to_scan): (&[u32], &[Generation]) = match kept {
            Some(p) => (p, &[]),
            None => (&[], &self.releases),
        };
        positions.iter().map(|&k| &self.releases[k as usize]).chain(to_scan.iter().filter(move |r| g.releases.contains(&r.id)))
    }

    /// The positions in `releases` kept for `g` when it is one of `generations` (its place is
    /// its `order` − 1); `None` for another value.
    fn kept_positions(&self, g: &Generation) -> Option<&[u32]> {
        let k = (g.order as usize).checked_sub(1)?;
        self.generations.get(k).filter(|x| std::ptr::eq(*x, g))?;
        self.release_positions.get(k).map(|p| &p[..])
    }

    /// The release of generation `g` to run at `today`: the newest release still supported and
    /// out of its teething period (released at least `teething_months` before `today`); else
    /// the newest still supported; else the newest released. For LibreOffice's fresh and still
    /// branches: the mature ("still") branch while the fresh one is in its teething period. (The
    /// support margin applies to generations, not to releases: a LibreOffice branch is never
    /// supported for more than a year.) `None` when no release of `g` is released by `today`.
    pub fn advised_release<'a>(&'a self, g: &'a Generation, today: NaiveDate, teething_months: u32) -> Option<&'a Generation> {
        // Newest first.
        let released = || self.releases_of(g).rev().filter(move |r| r.released.is_none_or(|d| d <= today));
        let supported = |r: &&Generation| !r.support(today).is_ended();
        let settled = |r: &&Generation| r.released.is_none_or(|d| d.checked_add_months(Months::new(teething_months)).is_some_and(|s| s <= today));
        released().find(|r| supported(r) && settled(r)).or_else(|| released().find(supported)).or_else(|| released().next())
    }

    /// Generations released on or before `date` (or with no release date), oldest first.
    pub fn released_by(&self, date: NaiveDate) -> impl Iterator<Item = &Generation> {
        self.generations.iter().filter(move |g| g.released.is_none_or(|r| r <= date))
    }

    /// The newest generation released on or before `date`.
    pub fn newest_by(&self, date: NaiveDate) -> Option<&Generation> {
        self.released_by(date).last()
    }

    /// The generation just before `g` in order, if any.
    pub fn previous(&self, g: &Generation) -> Option<&Generation> {
        self.generations.iter().rev().find(|h| h.order < g.order)
    }
}

impl Generation {
    /// Support status at `today`; "soon" means within 12 months.
    pub fn support(&self, today: NaiveDate) -> Support {
        if let Some(ended) = self.support_ended(today) {
            return ended;
        }
        match self.end_of_support {
            Some(d) if d <= today.checked_add_months(Months::new(12)).unwrap_or(today) => Support::EndsSoon(d),
            Some(d) => Support::Supported(d),
            None => Support::NoEndKnown(()),
        }
    }

    /// [`Generation::support`] when it has ended by `today` (`Ended` or `EndedUndated`), else
    /// `None`: without the calendar arithmetic of the 12-month bound, for callers that only
    /// ask whether it ended (the needs of every member in the pooled purchases).
    pub fn support_ended(&self, today: NaiveDate) -> Option<Support> {
        match self.end_of_support {
            Some(d) if d <= today => Some(Support::Ended(d)),
            None if self.eol_undated => Some(Support::EndedUndated(())),
            _ => None,
        }
    }

    /// Age in whole months at `date` since release (or documentation); `None` if unknown.
    pub fn age_months(&self, date: NaiveDate) -> Option<i64> {
        let start = self.released.or_else(|| self.documented_since.as_deref().and_then(|m| NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok()))?;
        Some(months_between(start, date))
    }
}

/// The generation key of a release id under a rule (`None`: the rule does not apply to this
/// id, which is then a generation of its own).
fn rule_key(rule: GenerationRule, id: &str) -> Option<&str> {
    match rule {
        GenerationRule::Cycle => None,
        GenerationRule::Major => id.split_once('.').map(|(m, _)| m),
        GenerationRule::BeforeDash => id.split_once('-').map(|(m, _)| m),
        GenerationRule::Line => Some(WHOLE_LINE),
    }
}

/// Groups releases (sorted by order) into generations by `rule`: a generation is released with
/// its first release, supported while any of its releases is (its end of support is its last
/// release's; no end known if one release has none, for a whole line, or for a generation of
/// several releases that holds the product's newest one: it is still being released), LTS if
/// one is, phased out if all are;
/// generations are ordered by their first release. Errors: `Data` for a key that is not a
/// valid generation id.
fn group_releases(releases: &[Generation], rule: GenerationRule) -> Result<Vec<Generation>> {
    let mut out: Vec<Generation> = Vec::new();
    for r in releases {
        let key = rule_key(rule, r.id.as_str()).unwrap_or(r.id.as_str());
        let id = GenerationId::parse(key).map_err(|e| Error::Data(format!("generation rule: {e}")))?;
        match out.iter_mut().find(|g| g.id == id) {
            Some(g) => g.releases.push(r.id.clone()),
            None => {
                let whole_line = rule == GenerationRule::Line;
                let label = if r.id.as_str() == key {
                    r.label.clone()
                } else if whole_line {
                    String::new()
                } else {
                    key.to_string()
                };
                out.push(Generation { id, label, order: out.len() as u32 + 1, releases: vec![r.id.clone()], whole_line, note: None, ..r.clone() });
            }
        }
    }
    for g in &mut out {
        let members: Vec<&Generation> = releases.iter().filter(|r| g.releases.contains(&r.id)).collect();
        // A whole line's start is not in the sources: they list the releases of a recent
        // window (endoflife.date keeps the maintained and recent ones), not the line's first.
        g.released = if g.whole_line { None } else { members.iter().filter_map(|r| r.released).min() };
        // Still being released: a generation of several releases that holds the product's
        // newest release gets more of them (Windows 11 after 26H1); the last known release's
        // end is then only a lower bound, not its end.
        let still_released = members.len() > 1 && releases.last().is_some_and(|last| g.releases.contains(&last.id));
        let open_ended = g.whole_line || still_released || members.iter().any(|r| r.end_of_support.is_none() && !r.eol_undated);
        g.end_of_support = if open_ended { None } else { members.iter().filter_map(|r| r.end_of_support).max() };
        g.eol_undated = !g.whole_line && members.iter().all(|r| r.eol_undated && r.end_of_support.is_none());
        g.lts = members.iter().any(|r| r.lts);
        g.phase_out = if members.iter().all(|r| r.phase_out.is_some()) { members[0].phase_out.clone() } else { None };
        // What every release of it meets or fails.
        g.meets.retain(|id| members.iter().all(|r| r.meets.contains(id)));
        g.fails.retain(|id| members.iter().all(|r| r.fails.contains(id)));
    }
    Ok(out)
}

/// Whole calendar months from `a` to `b` (2025-06-15 to 2026-06-14 is 11); negative when `b`
/// is before `a`.
pub fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    use chrono::Datelike;
    let m = i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month());
    if m > 0 && b.day() < a.day() {
        m - 1
    } else if m < 0 && b.day() > a.day() {
        m + 1
    } else {
        m
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small hand-made catalogue: category `site-web` with product `cms` (generations 1, 2, 3)
    /// and `spip` (no generations); category `paie-rh` with `paie`.
    pub(crate) fn small() -> Catalog {
        Catalog::from_texts(&CatalogTexts {
            categories: "[[category]]\nslug='site-web'\nlabel='Site web'\nkind='software'\n[[category]]\nslug='paie-rh'\nlabel='Paie'\nkind='business software'\n",
            products: "[[product]]\nid='cms'\nname='CMS'\ncategories=['site-web']\n[[product]]\nid='spip'\nname='SPIP'\ncategories=['site-web']\n[[product]]\nid='paie'\nname='Paie'\ncategories=['paie-rh']\n",
            generations: "[[generation]]\nproduct='cms'\nid='1'\nlabel='1'\norder=1\nreleased='2010-01-01'\nend_of_support='2018-01-01'\n\
                [[generation]]\nproduct='cms'\nid='2'\nlabel='2'\norder=2\nreleased='2016-01-01'\nend_of_support='2030-01-01'\n\
                [[generation]]\nproduct='cms'\nid='3'\nlabel='3'\norder=3\nreleased='2025-06-01'\n",
            regulations: "[[regulation]]\nid='dsn'\ndate='2022-01-01'\ntitle='DSN'\ncategories=['paie-rh']\n[[regulation]]\nid='big'\ndate='2022-01-01'\ntitle='x'\ncategories=['site-web']\nmin_population=3501\n",
            procurement: "[[threshold]]\nid='a'\nprocedure='p'\napplies_to='supplies_services'\nfrom_eur_ht=0\nbelow_eur_ht=40000\nvalid_from='2020-01-01'\nreference='R2122-8'\n",
        })
        .unwrap()
    }

    #[test]
    fn support_status() {
        let c = small();
        let cms = c.product(&Slug::parse("cms").unwrap()).unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(cms.generations[0].support(d("2020-01-01")), Support::Ended(d("2018-01-01")));
        assert_eq!(cms.generations[1].support(d("2029-06-01")), Support::EndsSoon(d("2030-01-01")));
        assert_eq!(cms.generations[1].support(d("2026-01-01")), Support::Supported(d("2030-01-01")));
        assert_eq!(cms.generations[2].support(d("2026-01-01")), Support::NoEndKnown(()));
        // Only whether it ended: the same `Ended`, `None` for every other status.
        assert_eq!(cms.generations[0].support_ended(d("2020-01-01")), Some(Support::Ended(d("2018-01-01"))));
        assert_eq!(cms.generations[0].support_ended(d("2017-12-31")), None);
        assert_eq!(cms.generations[1].support_ended(d("2029-06-01")), None);
        assert_eq!(cms.generations[2].support_ended(d("2026-01-01")), None);
        assert_eq!(cms.newest_by(d("2020-01-01")).unwrap().id.as_str(), "2");
        assert_eq!(cms.previous(&cms.generations[2]).unwrap().id.as_str(), "2");
        assert_eq!(cms.generations[2].age_months(d("2026-06-01")), Some(12));
        let web = Slug::parse("site-web").unwrap();
        assert_eq!(c.regulations_applying(&web, Some(3500)).count(), 0);
        assert_eq!(c.regulations_applying(&web, Some(3501)).count(), 1);
        assert_eq!(c.regulations_applying(&web, None).count(), 0, "a group: only the rules without a population bound");
        assert_eq!(c.regulations_of(&web).map(|r| r.id.as_str()).collect::<Vec<_>>(), ["big"]);
    }

    /// The indexed [`Product::generation`] gives, for every generation id and release id of
    /// the shipped catalogue, the generation a scan finds (by id first, then the first that
    /// lists the release), and nothing for an unknown id.
    #[test]
    fn the_generation_index_finds_what_a_scan_finds() {
        let c = crate::seeds::catalog().unwrap();
        let scan = |p: &Product, id: &GenerationId| -> Option<GenerationId> {
            p.generations.iter().find(|g| &g.id == id).or_else(|| p.generations.iter().find(|g| g.releases.contains(id))).map(|g| g.id.clone())
        };
        let mut checked = 0;
        for p in &c.products {
            for id in p.generations.iter().map(|g| &g.id).chain(p.releases.iter().map(|r| &r.id)) {
                assert_eq!(p.generation(id).map(|g| g.id.clone()), scan(p, id), "{} {id}", p.id);
                assert!(p.generation(id).is_some());
                checked += 1;
            }
            assert!(p.generation(&GenerationId::parse("no-such-generation").unwrap()).is_none());
        }
        assert!(checked > 100, "{checked} ids");
        // A release resolves to its generation: Windows 11 24H2 is Windows 11.
        let windows = c.product(&Slug::parse("windows").unwrap()).unwrap();
        assert_eq!(windows.generation(&GenerationId::parse("11-24h2-w").unwrap()).map(|g| g.id.as_str()), Some("11"));
    }

    /// A generation's releases are read at the positions kept for it, the same as scanning the
    /// product's releases for the ids it lists (which a copy of it still gets), and the release
    /// advised is the one the former code chose (every release released by the date, newest
    /// first: supported and settled, else supported, else the newest), at every month from
    /// 2014 to 2027 with teething periods of 0, 3 and 6 months.
    #[test]
    fn releases_of_a_generation_are_read_at_their_kept_positions() {
        let c = crate::seeds::catalog().unwrap();
        let (mut compared, mut advised) = (0, 0);
        for p in &c.products {
            for g in &p.generations {
                let scanned: Vec<&GenerationId> = p.releases.iter().filter(|r| g.releases.contains(&r.id)).map(|r| &r.id).collect();
                assert_eq!(p.releases_of(g).map(|r| &r.id).collect::<Vec<_>>(), scanned, "{} {}", p.id, g.id);
                assert_eq!(p.kept_positions(g).map(<[u32]>::len), Some(g.releases.len()), "{} {}: read at its positions", p.id, g.id);
                let copy = g.clone();
                assert!(p.kept_positions(&copy).is_none(), "{} {}: a copy is scanned", p.id, g.id);
                assert_eq!(p.releases_of(&copy).map(|r| &r.id).collect::<Vec<_>>(), scanned, "{} {} (a copy)", p.id, g.id);
                compared += scanned.len();
                for month in 0..14 * 12 {
                    let today = NaiveDate::from_ymd_opt(2014 + month / 12, 1 + month as u32 % 12, 15).unwrap();
                    for teething in [0, 3, 6] {
                        let released: Vec<&Generation> =
                            p.releases.iter().filter(|r| g.releases.contains(&r.id) && r.released.is_none_or(|d| d <= today)).collect();
                        let supported = |r: &&&Generation| !r.support(today).is_ended();
                        let settled = |r: &&&Generation| r.released.is_none_or(|d| d.checked_add_months(Months::new(teething)).is_some_and(|s| s <= today));
                        let before = released
                            .iter()
                            .rev()
                            .find(|r| supported(r) && settled(r))
                            .or_else(|| released.iter().rev().find(|r| supported(r)))
                            .or_else(|| released.last());
                        let now = p.advised_release(g, today, teething);
                        assert_eq!(now.map(|r| &r.id), before.map(|r| &r.id), "{} {} on {today}, teething {teething}", p.id, g.id);
                        advised += usize::from(now.is_some_and(|r| r.id != g.id));
                    }
                }
            }
        }
        assert!(compared > 100, "{compared} releases compared");
        assert!(advised > 1_000, "{advised} releases advised within a generation of several");
    }

    #[test]
    fn releases_group_into_the_generations_a_commune_buys() {
        let c = crate::seeds::catalog().unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let p = |x: &str| c.product(&Slug::parse(x).unwrap()).unwrap();
        let g = |x: &str| GenerationId::parse(x).unwrap();
        // Windows: feature updates are releases of Windows 10 and 11.
        let w = p("windows");
        let ids: Vec<&str> = w.generations.iter().map(|x| x.id.as_str()).collect();
        assert!(ids.ends_with(&["10", "11"]), "{ids:?}");
        let w11 = w.generation(&g("11-24h2-w")).unwrap();
        // Windows 11 is still being released (its newest release is the product's): no end known
        // yet; Windows 10 ended with its last release.
        assert_eq!((w11.id.as_str(), w11.support(d("2026-11-29"))), ("11", Support::NoEndKnown(())));
        assert_eq!(w.generation(&g("10-22h2")).unwrap().support(d("2026-11-29")), Support::Ended(d("2025-10-14")));
        assert_eq!(w.advised_release(w11, d("2026-11-29"), 3).unwrap().id.as_str(), "11-26h1-w");
        assert_eq!(c.label(&w.id, Some(&g("11"))), "Microsoft Windows 11");
        assert_eq!(c.label(&w.id, Some(&g("11-25h2-w"))), "Microsoft Windows 11 25H2 (W)");
        assert_eq!(c.generation_key(&w.id, Some(&g("11-25h2-w"))), Some(g("11")));
        // LibreOffice: one generation, the line; the still branch while the fresh one is new.
        let lo = p("libreoffice");
        assert_eq!((lo.generations.len(), lo.generations[0].id.as_str(), lo.generations[0].releases.len()), (1, WHOLE_LINE, 9));
        assert_eq!(lo.generations[0].support(d("2026-11-29")), Support::NoEndKnown(()));
        assert_eq!(lo.advised_release(&lo.generations[0], d("2026-03-01"), 3).unwrap().id.as_str(), "25.8", "26.2 is a month old");
        assert_eq!(lo.advised_release(&lo.generations[0], d("2026-06-01"), 3).unwrap().id.as_str(), "26.2");
        assert_eq!(c.label(&lo.id, Some(&g(WHOLE_LINE))), "LibreOffice");
        // Drupal and Veeam by major version; Office by cycle.
        let dr: Vec<&str> = p("drupal").generations.iter().map(|x| x.id.as_str()).collect();
        assert!(dr.ends_with(&["9", "10", "11"]), "{dr:?}");
        let d10 = p("drupal").generation(&g("10.4")).unwrap();
        assert_eq!((d10.id.as_str(), d10.end_of_support.is_some()), ("10", true), "Drupal 10 ends with its last release");
        let veeam = p("veeam-backup-and-replication");
        assert_eq!(veeam.generation(&g("9.5")).unwrap().id.as_str(), "9");
        let office: Vec<&str> = p("office").generations.iter().map(|x| x.id.as_str()).collect();
        assert!(office.ends_with(&["2019", "2021", "2024-ltsc", "2024"]), "{office:?}");
        // Every lifecycle product states its rule and why.
        assert!(c.products.iter().filter(|p| p.lifecycle.is_some()).all(|p| p.generation_rule_source.is_some()));
    }

    #[test]
    fn labels() {
        let c = small();
        let s = |x: &str| Slug::parse(x).unwrap();
        let g = |x: &str| GenerationId::parse(x).unwrap();
        assert_eq!(c.label(&s("cms"), Some(&g("2"))), "CMS 2");
        assert_eq!(c.label(&s("cms"), None), "CMS");
        assert_eq!(c.label(&s("cms"), Some(&g("9"))), "CMS 9");
        assert_eq!(c.label(&s("nope"), Some(&g("1"))), "nope 1");
        assert_eq!(c.label(&s("nope"), None), "nope");
    }

    #[test]
    fn unknown_category_rejected() {
        let r = Catalog::from_texts(&CatalogTexts {
            categories: "[[category]]\nslug='a'\nlabel='A'\nkind='software'\n",
            products: "[[product]]\nid='p'\nname='P'\ncategories=['b']\n",
            generations: "",
            regulations: "regulation=[]",
            procurement: "threshold=[]",
        });
        assert!(matches!(r, Err(Error::Data(_))));
    }
}
