//! Importer: derives `seeds/` and `catalog/generations.toml` from the pinned open data in
//! `../shared/data` (see its README). This is an edge module: it reads and writes files; the app
//! itself only ever reads what it wrote.
//!
//! Inputs (all read-only):
//! - `cog/communes.json`, `cog/epci.json`: INSEE COG 2026 via `@etalab/decoupage-administratif`
//!   6.0.0 (MIT package, Licence Ouverte data);
//! - `geo/communes-bretagne.geojson` or `geo/departements/*.geojson`: IGN Admin Express COG
//!   2018 polygons via france-geojson (Licence Ouverte), WGS84;
//! - `lifecycle/*.md`: endoflife.date snapshot of 2026-08-22 (MIT).
//!
//! Outputs are deterministic: rows sorted by code, floats with fixed decimals.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use geo::orient::{Direction, Orient};
use geo::{Centroid, Coord, GeodesicArea, Line, LineString, MakeValid, MultiPolygon, Polygon, Validation};
use rstar::RTree;
use rstar::primitives::GeomWithData;
use serde::Deserialize;

use crate::core::territory::haversine_km;
use crate::error::{Error, Result};

/// Which communes to import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportArea {
    /// One region by its INSEE code (`53` = Bretagne), polygons from
    /// `geo/communes-bretagne.geojson` when the region is 53, else from the department files.
    Region(String),
    /// Every department (101 files).
    All,
}

/// Parameters of an import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The `data/` folder of the shared open data.
    pub from: PathBuf,
    /// Which communes: one region (by INSEE region code) or every department.
    pub scope: ImportArea,
    /// Where to write the seed files (created if missing).
    pub seeds_out: PathBuf,
    /// The catalogue folder: `products.toml` is read from it and `generations.toml` written to
    /// it. `None` skips the lifecycle import.
    pub catalog_dir: Option<PathBuf>,
    /// Distance in metres within which two polygon boundaries count as the same border
    /// (vertices of one file are identical; across department files they differ by a few m).
    pub tolerance_m: f64,
    /// Shared borders shorter than this (km) are ignored: corner contacts, not borders.
    pub min_border_km: f64,
}

impl ImportOptions {
    /// Defaults: 10 m tolerance, 20 m minimum border.
    pub fn new(from: PathBuf, scope: ImportArea, seeds_out: PathBuf, catalog_dir: Option<PathBuf>) -> Self {
        ImportOptions { from, scope, seeds_out, catalog_dir, tolerance_m: 10.0, min_border_km: 0.02 }
    }
}

/// What an import did, for the operator (also written to `IMPORT_REPORT.md`).
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Current communes written.
    pub communes: usize,
    /// EPCI with at least one written member.
    pub epcis: usize,
    /// Border edges.
    pub border_edges: usize,
    /// Nearest-centroid edges added for communes with no border neighbour.
    pub nearest_edges: usize,
    /// Edges of communes without a polygon to the commune they were part of and its
    /// neighbours, or to the communes sharing their postal code.
    pub derived_edges: usize,
    /// 2018 polygons matched directly, through `chefLieu`, through `anciensCodes`.
    pub mapped_direct: usize,
    /// 2018 polygons of former communes matched to the current commune of their `chefLieu`.
    pub mapped_chef_lieu: usize,
    /// 2018 polygons matched only through a current commune's `anciensCodes`.
    pub mapped_anciens_codes: usize,
    /// 2018 codes that map to no current commune of the scope: (code, name, why).
    pub unmapped: Vec<(String, String, String)>,
    /// Current communes of the scope with no 2018 polygon of their own (re-created since 2018,
    /// or overseas collectivities the polygons do not cover): (code, name, how it was linked).
    /// They are kept, flagged `polygon = none` in `communes.csv`.
    pub without_polygon: Vec<(String, String, String)>,
    /// Other codes and names people use, written to `aliases.csv`: (kind, rows).
    pub aliases: BTreeMap<&'static str, usize>,
    /// Rows of the postal file whose commune code maps to no current commune: (postal, code, name).
    pub postal_unresolved: Vec<(String, String, String)>,
    /// Communes with no border neighbour: (code, name).
    pub isolated: Vec<(String, String)>,
    /// Links added to connect a piece of the graph to the rest: (from, to).
    pub linked_components: Vec<(String, String)>,
    /// Communes outside any EPCI: (code, name).
    pub without_epci: Vec<(String, String)>,
    /// Communes whose map shape (`communes.geojson`) is simplified less than the default, so
    /// that it stays valid: (code, name, tolerance in degrees, decimals), see
    /// [`MAP_SIMPLIFY_STEPS`].
    pub simplified_less: Vec<(String, String, f64, usize)>,
    /// Communes whose source polygons were invalid, repaired before simplifying: (code, name,
    /// what was invalid).
    pub repaired_shapes: Vec<(String, String, String)>,
    /// Lifecycle products imported: (product id, generations).
    pub lifecycle: Vec<(String, usize)>,
}

#[derive(Deserialize)]
struct CogCommune {
    code: String,
    nom: String,
    #[serde(rename = "type")]
    kind: String,
    departement: Option<String>,
    region: Option<String>,
    population: Option<u32>,
    #[serde(rename = "chefLieu")]
    chef_lieu: Option<String>,
    #[serde(rename = "anciensCodes", default)]
    anciens_codes: Vec<String>,
    /// For an `arrondissement-municipal`: the code of its city (75056, 69123, 13055).
    commune: Option<String>,
    #[serde(rename = "codesPostaux", default)]
    codes_postaux: Vec<String>,
}

/// A row of `postal/codes-postaux.json` (npm `codes-postaux` 4.1.2).
#[derive(Deserialize)]
struct PostalRow {
    #[serde(rename = "codePostal")]
    code_postal: String,
    #[serde(rename = "codeCommune")]
    code_commune: String,
    #[serde(rename = "nomCommune")]
    nom_commune: String,
}

#[derive(Deserialize)]
struct CogEpci {
    code: String,
    nom: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "populationMunicipale")]
    population: Option<u32>,
    membres: Vec<CogMember>,
}

#[derive(Deserialize)]
struct CogMember {
    code: String,
    nom: String,
    #[serde(rename = "populationMunicipale")]
    population: Option<u32>,
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::Data(format!("{}: {e}", path.display())))
}

fn json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    serde_json::from_str(&read(path)?).map_err(|e| Error::Data(format!("{}: {e}", path.display())))
}

/// The current commune of scope a 2018 polygon code belongs to, and how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Direct,
    ChefLieu,
    AnciensCodes,
}

/// The COG 2026 communes of the import area and the tables that map a 2018 polygon code to
/// its current commune.
struct CogIndex<'a> {
    /// Current communes (`commune-actuelle`) of the area, by INSEE code (sorted).
    current: BTreeMap<&'a str, &'a CogCommune>,
    /// Every current commune of France, by INSEE code.
    all_current: HashMap<&'a str, &'a CogCommune>,
    /// Former communes (`commune-deleguee`, `commune-associee`, ...) → code of their chef-lieu.
    chef_lieu: HashMap<&'a str, &'a str>,
    /// Former INSEE codes listed in `anciensCodes` → code of the current commune.
    anciens: HashMap<&'a str, &'a str>,
}

impl<'a> CogIndex<'a> {
    /// Indexes `cog` (the rows of `cog/communes.json`) for the communes of `area`.
    fn new(cog: &'a [CogCommune], area: &ImportArea) -> Self {
        let in_area = |c: &CogCommune| match area {
            ImportArea::All => true,
            ImportArea::Region(r) => c.region.as_deref() == Some(r.as_str()),
        };
        CogIndex {
            current: cog.iter().filter(|c| c.kind == "commune-actuelle" && in_area(c)).map(|c| (c.code.as_str(), c)).collect(),
            all_current: cog.iter().filter(|c| c.kind == "commune-actuelle").map(|c| (c.code.as_str(), c)).collect(),
            chef_lieu: cog.iter().filter(|c| c.kind != "commune-actuelle").filter_map(|c| c.chef_lieu.as_deref().map(|p| (c.code.as_str(), p))).collect(),
            anciens: cog
                .iter()
                .filter(|c| c.kind == "commune-actuelle")
                .flat_map(|c| c.anciens_codes.iter().map(move |a| (a.as_str(), c.code.as_str())))
                .collect(),
        }
    }

    /// The current commune (any area) a 2018 polygon code belongs to, and how it was found:
    /// the code itself, then its chef-lieu, then `anciensCodes`; `None` when none applies.
    fn target(&self, code: &str) -> Option<(String, Via)> {
        if self.all_current.contains_key(code) {
            Some((code.to_string(), Via::Direct))
        } else if let Some(p) = self.chef_lieu.get(code) {
            Some((p.to_string(), Via::ChefLieu))
        } else {
            self.anciens.get(code).map(|p| (p.to_string(), Via::AnciensCodes))
        }
    }
}

/// Result of step 1: the 2018 polygons (WGS84 lon/lat degrees) of each current commune of the
/// area, and the 2018 codes merged into another commune.
struct Polygons2018 {
    /// Current INSEE code → the polygons of its 2018 communes (file order).
    parts: BTreeMap<String, Vec<Polygon>>,
    /// (2018 code, current code, `chef_lieu` or `anciens_codes`), for `former_communes.csv`.
    former: Vec<(String, String, &'static str)>,
}

/// Graph edges by (smaller, larger) commune position in `codes`: (`border` or `nearest`,
/// shared border length in km for `border` edges).
type Edges = BTreeMap<(u32, u32), (&'static str, Option<f64>)>;

/// The GeoJSON files of the area: `geo/communes-bretagne.geojson` for region 53, else every
/// `geo/departements/*.geojson`, sorted by path. Errors: the folder cannot be read.
fn geo_files(opts: &ImportOptions) -> Result<Vec<PathBuf>> {
    Ok(match &opts.scope {
        ImportArea::Region(r) if r == "53" => vec![opts.from.join("geo/communes-bretagne.geojson")],
        _ => {
            let mut v: Vec<PathBuf> = fs::read_dir(opts.from.join("geo/departements"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "geojson"))
                .collect();
            v.sort();
            v
        }
    })
}

/// Step 1. Polygons of 2018, grouped under their current commune: reads every GeoJSON file of
/// the area (a code seen twice keeps its first feature), maps each 2018 code to its current
/// commune ([`CogIndex::target`]) and counts how in `report` (`mapped_*`, `unmapped`).
/// Errors: unreadable or malformed file, invalid geometry.
fn polygons_2018_by_current_commune(
    opts: &ImportOptions,
    index: &CogIndex,
    report: &mut ImportReport,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<Polygons2018> {
    let geo_files = geo_files(opts)?;
    let mut out = Polygons2018 { parts: BTreeMap::new(), former: Vec::new() };
    let mut seen_codes = BTreeSet::new();
    for (i, file) in geo_files.iter().enumerate() {
        progress("polygones", i as u64, geo_files.len() as u64);
        let gj: geojson::FeatureCollection = read(file)?.parse().map_err(|e| Error::Data(format!("{}: {e}", file.display())))?;
        for f in gj.features {
            let code = f.property("code").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            let name = f.property("nom").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            if !seen_codes.insert(code.clone()) {
                continue; // the same commune in two department files: keep the first
            }
            let Some(g) = f.geometry else { continue };
            let g: geo::Geometry<f64> = (&g.value).try_into().map_err(|e| Error::Data(format!("{}: {code}: {e}", file.display())))?;
            let polys: Vec<Polygon> = match g {
                geo::Geometry::Polygon(p) => vec![p],
                geo::Geometry::MultiPolygon(mp) => mp.0,
                _ => continue,
            };
            match index.target(code.as_str()) {
                Some((t, via)) if index.current.contains_key(t.as_str()) => {
                    match via {
                        Via::Direct => report.mapped_direct += 1,
                        Via::ChefLieu => report.mapped_chef_lieu += 1,
                        Via::AnciensCodes => report.mapped_anciens_codes += 1,
                    }
                    if via != Via::Direct {
                        out.former.push((code.clone(), t.clone(), if via == Via::ChefLieu { "chef_lieu" } else { "anciens_codes" }));
                    }
                    out.parts.entry(t).or_default().extend(polys);
                }
                Some((t, _)) => report.unmapped.push((code, name, format!("maps to {t}, outside the imported scope"))),
                None => report.unmapped.push((code, name, "no current commune, chefLieu or anciensCodes entry".into())),
            }
        }
    }
    progress("polygones", geo_files.len() as u64, geo_files.len() as u64);
    Ok(out)
}

/// Step 2. One multipolygon per current commune (union of the former communes' polygons), for
/// every current commune of the area, sorted by code. A commune with no 2018 polygon of its own
/// (re-created since 2018, or an overseas collectivity the polygons do not cover) gets an empty
/// multipolygon; it is linked later ([`link_communes_without_polygon`]).
fn one_multipolygon_per_commune<'a>(current: &BTreeMap<&'a str, &CogCommune>, parts: &BTreeMap<String, Vec<Polygon>>) -> (Vec<&'a str>, Vec<MultiPolygon>) {
    let mut codes: Vec<&str> = Vec::new();
    let mut shapes: Vec<MultiPolygon> = Vec::new();
    for code in current.keys() {
        shapes.push(match parts.get(*code) {
            Some(p) if p.len() == 1 => MultiPolygon(p.clone()),
            Some(p) => geo::unary_union(p.iter()),
            None => MultiPolygon(Vec::new()),
        });
        codes.push(*code);
    }
    (codes, shapes)
}

/// The postal codes of the area's current communes, both ways, from `postal/codes-postaux.json`
/// (a row naming a delegated or associated commune, an arrondissement municipal or a former
/// code counts for the current commune it belongs to) and the `codesPostaux` of the COG rows.
struct PostalIndex {
    /// (postal code, current commune code, the name the postal file gives when it names another
    /// commune than the current one: `Antrain` for 35560 → 35004 Val-Couesnon), sorted, unique.
    rows: BTreeSet<(String, String, String)>,
    /// Current commune code → its postal codes.
    of_commune: BTreeMap<String, BTreeSet<String>>,
    /// Postal code → current commune codes.
    communes_of: BTreeMap<String, BTreeSet<String>>,
}

/// Reads `postal/codes-postaux.json` (when present) and indexes the postal codes of `current`.
/// Rows naming no current commune of the area are skipped; those naming no current commune at
/// all go to `report.postal_unresolved`. Errors: the file exists and does not parse.
fn postal_index(opts: &ImportOptions, cog: &[CogCommune], index: &CogIndex, report: &mut ImportReport) -> Result<PostalIndex> {
    let path = opts.from.join("postal/codes-postaux.json");
    let rows: Vec<PostalRow> = if path.exists() { json(&path)? } else { Vec::new() };
    let arrondissements: HashMap<&str, &str> =
        cog.iter().filter(|c| c.kind == "arrondissement-municipal").filter_map(|c| c.commune.as_deref().map(|p| (c.code.as_str(), p))).collect();
    let mut out = PostalIndex { rows: BTreeSet::new(), of_commune: BTreeMap::new(), communes_of: BTreeMap::new() };
    let mut add = |postal: &str, code: &str, name: String| {
        out.rows.insert((postal.to_string(), code.to_string(), name));
        out.of_commune.entry(code.to_string()).or_default().insert(postal.to_string());
        out.communes_of.entry(postal.to_string()).or_default().insert(code.to_string());
    };
    for r in &rows {
        let target = match arrondissements.get(r.code_commune.as_str()) {
            Some(city) => Some(city.to_string()),
            None => index.target(&r.code_commune).map(|(t, _)| t),
        };
        match target {
            Some(t) if index.current.contains_key(t.as_str()) => {
                let name = if t == r.code_commune && index.current[t.as_str()].nom == r.nom_commune { String::new() } else { r.nom_commune.clone() };
                add(&r.code_postal, &t, name);
            }
            Some(_) => {}
            None => report.postal_unresolved.push((r.code_postal.clone(), r.code_commune.clone(), r.nom_commune.clone())),
        }
    }
    for c in index.current.values() {
        for p in &c.codes_postaux {
            add(p, &c.code, String::new());
        }
    }
    report.postal_unresolved.sort();
    report.postal_unresolved.dedup();
    Ok(out)
}

/// Step 4b. Current communes with no 2018 polygon of their own (`shapes[i]` empty), flagged in
/// `polygon` and listed in `report.without_polygon`. The sources give no official link from a
/// commune re-created since 2018 (L'Oie 85165) to the commune nouvelle it was part of
/// (Essarts-en-Bocage 85084), so it is **derived**: among the communes with a polygon sharing
/// one of its postal codes and its EPCI, the one with the largest 2018 area (a commune nouvelle
/// is larger than the communes around it). The commune takes that one's centroid and is linked
/// to it and to its neighbours (`derived` edges). With no such commune, it is linked to the
/// communes with a polygon sharing its postal code, and takes the mean of their centroids.
/// With neither (the overseas collectivities: Saint-Pierre-et-Miquelon, Polynésie, ...), it has
/// no centroid and no edge. Returns, per commune, how it was linked (`part_of:85084`,
/// `postal_code:14940`, or empty).
#[allow(clippy::too_many_arguments)]
fn link_communes_without_polygon(
    codes: &[&str],
    current: &BTreeMap<&str, &CogCommune>,
    shapes: &[MultiPolygon],
    centroids: &mut [Option<(f64, f64)>],
    postal: &PostalIndex,
    epci_of: &HashMap<&str, &str>,
    edges: &mut Edges,
    report: &mut ImportReport,
) -> Vec<String> {
    let pos: HashMap<&str, usize> = codes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let areas: Vec<f64> = shapes.iter().map(|s| if s.0.is_empty() { 0.0 } else { s.orient(Direction::Default).geodesic_area_unsigned() }).collect();
    let mut how = vec![String::new(); codes.len()];
    let border_neighbours = |i: usize, edges: &Edges| -> Vec<usize> {
        edges
            .keys()
            .filter_map(|&(a, b)| {
                if a as usize == i {
                    Some(b as usize)
                } else if b as usize == i {
                    Some(a as usize)
                } else {
                    None
                }
            })
            .collect()
    };
    for i in (0..codes.len()).filter(|&i| shapes[i].0.is_empty()) {
        let code = codes[i];
        let postal_codes = postal.of_commune.get(code).cloned().unwrap_or_default();
        let siblings: BTreeSet<usize> = postal_codes
            .iter()
            .flat_map(|p| postal.communes_of.get(p).into_iter().flatten())
            .filter_map(|c| pos.get(c.as_str()).copied())
            .filter(|&j| j != i && !shapes[j].0.is_empty())
            .collect();
        let epci = epci_of.get(code);
        let parent = siblings
            .iter()
            .copied()
            .filter(|&j| epci.is_some() && epci_of.get(codes[j]) == epci)
            .max_by(|&a, &b| areas[a].total_cmp(&areas[b]).then(b.cmp(&a)));
        let linked: Vec<usize> = if let Some(p) = parent {
            centroids[i] = centroids[p];
            how[i] = format!("part_of:{}", codes[p]);
            std::iter::once(p).chain(border_neighbours(p, edges)).collect()
        } else if !siblings.is_empty() {
            let n = siblings.len() as f64;
            let (x, y) = siblings.iter().filter_map(|&j| centroids[j]).fold((0.0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1));
            centroids[i] = Some((x / n, y / n));
            how[i] = format!("postal_code:{}", postal_codes.iter().cloned().collect::<Vec<_>>().join(" "));
            siblings.iter().copied().collect()
        } else {
            Vec::new()
        };
        for j in linked {
            edges.entry((i.min(j) as u32, i.max(j) as u32)).or_insert(("derived", None));
        }
        let said = match how[i].split_once(':') {
            Some(("part_of", p)) => {
                format!("part of {p} {} (derived: shares postal code and EPCI, largest 2018 area); linked to it and its neighbours", current[p].nom)
            }
            Some((_, p)) => format!("no commune of its EPCI shares its postal code; linked to the communes of postal code {p}"),
            None => "no polygon, postal code or EPCI to derive a place from: no centroid, no neighbour".to_string(),
        };
        report.without_polygon.push((code.to_string(), current[code].nom.clone(), said));
    }
    how
}

/// Other codes and names by which people know a current commune, for `aliases.csv`: (kind,
/// code, name, current commune code), sorted. Kinds: `delegated` (commune déléguée, COG
/// `commune-deleguee`: Antrain 35004 → Val-Couesnon 35004), `associated` (commune associée),
/// `arrondissement` (arrondissement municipal: 75101 → Paris 75056), `former_code` (a code in
/// `anciensCodes` that is no delegated or associated commune: 56016 → 56173), `postal_code`
/// (29200 → Brest 29019; the name is the postal file's when it names another commune).
fn aliases(cog: &[CogCommune], codes: &[&str], postal: &PostalIndex, report: &mut ImportReport) -> BTreeSet<(&'static str, String, String, String)> {
    let scope: HashSet<&str> = codes.iter().copied().collect();
    let mut out: BTreeSet<(&'static str, String, String, String)> = BTreeSet::new();
    let mut named: HashSet<&str> = HashSet::new();
    for c in cog {
        let (kind, target) = match c.kind.as_str() {
            "commune-deleguee" => ("delegated", c.chef_lieu.as_deref()),
            "commune-associee" => ("associated", c.chef_lieu.as_deref()),
            "arrondissement-municipal" => ("arrondissement", c.commune.as_deref()),
            _ => continue,
        };
        if let Some(t) = target.filter(|t| scope.contains(t)) {
            out.insert((kind, c.code.clone(), c.nom.clone(), t.to_string()));
            named.insert(c.code.as_str());
        }
    }
    for c in cog.iter().filter(|c| c.kind == "commune-actuelle" && scope.contains(c.code.as_str())) {
        for a in c.anciens_codes.iter().filter(|a| !named.contains(a.as_str()) && !scope.contains(a.as_str())) {
            out.insert(("former_code", a.clone(), String::new(), c.code.clone()));
        }
    }
    // A row naming the delegated commune or arrondissement a postal code serves (75011: Paris 11e
    // Arrondissement) says more than the bare one of the COG's `codesPostaux`.
    let named: HashSet<(&str, &str)> = postal.rows.iter().filter(|r| !r.2.is_empty()).map(|r| (r.0.as_str(), r.1.as_str())).collect();
    for (p, c, n) in &postal.rows {
        if n.is_empty() && named.contains(&(p.as_str(), c.as_str())) {
            continue;
        }
        out.insert(("postal_code", p.clone(), n.clone(), c.clone()));
    }
    for r in &out {
        *report.aliases.entry(r.0).or_default() += 1;
    }
    out
}

/// Step 3, first half. Shared boundary length between communes: every boundary segment of
/// commune `i` whose two ends and midpoint all lie within `tolerance_m` of commune `j`'s
/// boundary adds its haversine length (km) to `(i, j)`. Distances are tested on an
/// equirectangular projection in km centred on the mean centroid latitude. Keys are ordered
/// pairs of positions in `shapes`; `(i, j)` and `(j, i)` are measured separately.
fn shared_boundary_km(shapes: &[MultiPolygon], tolerance_m: f64, progress: &mut dyn FnMut(&str, u64, u64)) -> BTreeMap<(u32, u32), f64> {
    let n = shapes.len();
    let lat0 = shapes.iter().filter_map(|s| s.centroid()).map(|p| p.y()).sum::<f64>() / n.max(1) as f64;
    let kx = 111.32 * lat0.to_radians().cos();
    let ky = 110.574;
    let proj = |c: Coord| Coord { x: c.x * kx, y: c.y * ky };
    let mut segs: Vec<GeomWithData<Line, u32>> = Vec::new();
    let mut own: Vec<Vec<(Coord, Coord)>> = vec![Vec::new(); n];
    for (i, s) in shapes.iter().enumerate() {
        for poly in &s.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for w in ring.0.windows(2) {
                    if w[0] == w[1] {
                        continue;
                    }
                    segs.push(GeomWithData::new(Line::new(proj(w[0]), proj(w[1])), i as u32));
                    own[i].push((w[0], w[1]));
                }
            }
        }
    }
    let tree = RTree::bulk_load(segs);
    let eps = tolerance_m / 1000.0;
    let near = |c: Coord| -> BTreeSet<u32> { tree.locate_within_distance(geo::Point::from(proj(c)), eps * eps).map(|g| g.data).collect() };
    let mut shared: BTreeMap<(u32, u32), f64> = BTreeMap::new();
    for (i, segments) in own.iter().enumerate().take(n) {
        if i % 64 == 0 {
            progress("frontières", i as u64, n as u64);
        }
        for &(p, q) in segments {
            let mid = Coord { x: (p.x + q.x) / 2.0, y: (p.y + q.y) / 2.0 };
            let np = near(p);
            if np.len() < 2 {
                continue; // only the commune itself
            }
            let nq = near(q);
            let nm = near(mid);
            for j in np.iter().copied().filter(|&j| j != i as u32 && nq.contains(&j) && nm.contains(&j)) {
                *shared.entry((i as u32, j)).or_default() += haversine_km((p.x, p.y), (q.x, q.y));
            }
        }
    }
    progress("frontières", n as u64, n as u64);
    shared
}

/// Step 3. Border edges: boundary segments of one commune lying within tolerance of another's.
/// A pair becomes a `border` edge when the mean of its two measured lengths
/// ([`shared_boundary_km`]) is at least `min_border_km`; the edge carries that length, km.
fn border_edges(shapes: &[MultiPolygon], opts: &ImportOptions, progress: &mut dyn FnMut(&str, u64, u64)) -> Edges {
    let shared = shared_boundary_km(shapes, opts.tolerance_m, progress);
    let mut edges: Edges = BTreeMap::new();
    for (&(i, j), &l) in &shared {
        if i < j {
            let back = shared.get(&(j, i)).copied().unwrap_or(0.0);
            let km = (l + back) / 2.0;
            if km >= opts.min_border_km {
                edges.insert((i, j), ("border", Some(km)));
            }
        }
    }
    edges
}

/// Step 4. Communes touching nobody: linked to their 2 nearest communes by centroid
/// (haversine km between `centroids`, lon/lat degrees; ties by position), as `nearest` edges;
/// listed in `report.isolated`. Communes with no polygon (no centroid yet) are left to
/// [`link_communes_without_polygon`].
fn link_isolated_communes(
    codes: &[&str],
    current: &BTreeMap<&str, &CogCommune>,
    centroids: &[Option<(f64, f64)>],
    edges: &mut Edges,
    report: &mut ImportReport,
) {
    let n = codes.len();
    let mut has_border = vec![false; n];
    for &(i, j) in edges.keys() {
        has_border[i as usize] = true;
        has_border[j as usize] = true;
    }
    for i in 0..n {
        let Some(ci) = centroids[i] else { continue };
        if has_border[i] {
            continue;
        }
        report.isolated.push((codes[i].to_string(), current[codes[i]].nom.clone()));
        let mut by_d: Vec<(f64, usize)> = (0..n).filter(|&j| j != i).filter_map(|j| centroids[j].map(|cj| (haversine_km(ci, cj), j))).collect();
        by_d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(_, j) in by_d.iter().take(2) {
            let key = (i.min(j) as u32, i.max(j) as u32);
            edges.entry(key).or_insert(("nearest", None));
        }
    }
}

/// Step 5. Islands that only touch each other (Belle-Île, Houat and Hœdic): link every piece
/// of the graph to the rest, from its commune nearest to a commune outside it (haversine km
/// between `centroids`), until the graph is connected. Each link is a `nearest` edge, listed in
/// `report.linked_components`. Communes with no centroid (no place to derive) stay apart.
fn link_components(codes: &[&str], centroids: &[Option<(f64, f64)>], edges: &mut Edges, report: &mut ImportReport) {
    let n = codes.len();
    loop {
        let comp = components(n, edges.keys());
        let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, &c) in comp.iter().enumerate() {
            if centroids[i].is_some() {
                *sizes.entry(c).or_default() += 1;
            }
        }
        if sizes.len() <= 1 {
            break;
        }
        let largest = sizes.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(c, _)| *c).unwrap_or(0);
        let Some(&small) = sizes.keys().find(|&&c| c != largest) else { break };
        let mut best: Option<(f64, usize, usize)> = None;
        for i in (0..n).filter(|&i| comp[i] == small) {
            let Some(ci) = centroids[i] else { continue };
            for j in (0..n).filter(|&j| comp[j] != small) {
                let Some(cj) = centroids[j] else { continue };
                let d = haversine_km(ci, cj);
                if best.is_none_or(|b| d < b.0) {
                    best = Some((d, i, j));
                }
            }
        }
        let Some((_, i, j)) = best else { break };
        report.linked_components.push((codes[i].to_string(), codes[j].to_string()));
        edges.insert((i.min(j) as u32, i.max(j) as u32), ("nearest", None));
    }
}

/// Step 6. EPCI of the scope and the communes' EPCI: the EPCI with at least one member among
/// `codes`, sorted by SIREN, and the SIREN of the EPCI of every member of those (commune code →
/// SIREN).
fn epcis_of_scope<'a>(epcis: &'a [CogEpci], codes: &[&str]) -> (Vec<&'a CogEpci>, HashMap<&'a str, &'a str>) {
    let index: HashSet<&str> = codes.iter().copied().collect();
    let mut epci_of: HashMap<&str, &str> = HashMap::new();
    let mut kept_epcis: Vec<&CogEpci> = epcis.iter().filter(|e| e.membres.iter().any(|m| index.contains(m.code.as_str()))).collect();
    kept_epcis.sort_by(|a, b| a.code.cmp(&b.code));
    for e in &kept_epcis {
        for m in &e.membres {
            epci_of.insert(m.code.as_str(), e.code.as_str());
        }
    }
    (kept_epcis, epci_of)
}

/// What step 7 writes: the communes (sorted codes, their shapes and centroids in lon/lat
/// degrees, same order), the graph edges, the kept EPCI and the merged 2018 codes.
struct SeedTables<'s, 'c> {
    /// Current INSEE codes of the area, sorted.
    codes: &'s [&'c str],
    /// COG rows of the area's current communes, by code.
    current: &'s BTreeMap<&'c str, &'c CogCommune>,
    /// One multipolygon per code (WGS84).
    shapes: &'s [MultiPolygon],
    /// Centroid per code, (lon, lat) degrees; `None` when no place can be derived.
    centroids: &'s [Option<(f64, f64)>],
    /// Per code, how a commune without a polygon was linked (`part_of:85084`,
    /// `postal_code:14940`), empty otherwise.
    linked_via: &'s [String],
    /// Other codes and names of the communes (see [`aliases`]).
    aliases: &'s BTreeSet<(&'static str, String, String, String)>,
    /// The graph.
    edges: &'s Edges,
    /// EPCI with a member in the area, sorted by SIREN.
    kept_epcis: &'s [&'c CogEpci],
    /// Commune code → SIREN of its EPCI.
    epci_of: &'s HashMap<&'c str, &'c str>,
    /// Merged 2018 codes: (2018 code, current code, how), sorted.
    former: &'s [(String, String, &'static str)],
}

/// Step 7, communes: `communes.csv` (code, name, department, population, EPCI SIREN, centroid
/// lon/lat with 5 decimals, geodesic area km² with 3 decimals, `polygon` = `own` or `none`,
/// `linked_via`). A commune without a polygon has an empty area, and an empty centroid when no
/// place could be derived. Communes with no EPCI go to `report.without_epci`. Errors: I/O, CSV.
fn write_communes_csv(dir: &Path, s: &SeedTables, report: &mut ImportReport) -> Result<()> {
    let mut w = csv_writer(&dir.join("communes.csv"))?;
    w.write_record(["code", "name", "department", "population", "epci_siren", "lon", "lat", "area_km2", "polygon", "linked_via"]).map_err(csv_err)?;
    for (i, code) in s.codes.iter().enumerate() {
        let c = s.current[code];
        let epci = s.epci_of.get(code).copied().unwrap_or("");
        if epci.is_empty() {
            report.without_epci.push((code.to_string(), c.nom.clone()));
        }
        let own = !s.shapes[i].0.is_empty();
        let area = if own { format!("{:.3}", s.shapes[i].orient(Direction::Default).geodesic_area_unsigned() / 1e6) } else { String::new() };
        let (lon, lat) = s.centroids[i].map_or((String::new(), String::new()), |(x, y)| (format!("{x:.5}"), format!("{y:.5}")));
        let pop = c.population.unwrap_or(0).to_string();
        let polygon = if own { "own" } else { "none" };
        w.write_record([code, c.nom.as_str(), c.departement.as_deref().unwrap_or(""), &pop, epci, &lon, &lat, &area, polygon, &s.linked_via[i]])
            .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// Step 7, aliases: `aliases.csv` (kind, code, name, commune), see [`aliases`]. Errors: I/O, CSV.
fn write_aliases_csv(dir: &Path, s: &SeedTables) -> Result<()> {
    let mut w = csv_writer(&dir.join("aliases.csv"))?;
    w.write_record(["kind", "code", "name", "commune"]).map_err(csv_err)?;
    for (kind, code, name, commune) in s.aliases {
        w.write_record([*kind, code.as_str(), name.as_str(), commune.as_str()]).map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// Step 7, EPCI: `epcis.csv` (SIREN, name, type, population) and `epci_members.csv` (SIREN,
/// member code, name, population; members sorted by code). Errors: I/O, CSV.
fn write_epci_csvs(dir: &Path, s: &SeedTables) -> Result<()> {
    let mut w = csv_writer(&dir.join("epcis.csv"))?;
    w.write_record(["siren", "name", "type", "population"]).map_err(csv_err)?;
    for e in s.kept_epcis {
        w.write_record([e.code.as_str(), &e.nom, &e.kind, &e.population.unwrap_or(0).to_string()]).map_err(csv_err)?;
    }
    w.flush()?;
    let mut w = csv_writer(&dir.join("epci_members.csv"))?;
    w.write_record(["epci_siren", "code", "name", "population"]).map_err(csv_err)?;
    for e in s.kept_epcis {
        let mut members: Vec<&CogMember> = e.membres.iter().collect();
        members.sort_by(|a, b| a.code.cmp(&b.code));
        for m in members {
            w.write_record([e.code.as_str(), &m.code, &m.nom, &m.population.unwrap_or(0).to_string()]).map_err(csv_err)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Step 7, graph: `former_communes.csv` (2018 code, current code, via) and `edges.csv` (a, b,
/// kind, shared border km with 3 decimals for `border` edges, centroid distance km with 3
/// decimals, haversine). Errors: I/O, CSV.
fn write_graph_csvs(dir: &Path, s: &SeedTables) -> Result<()> {
    let mut w = csv_writer(&dir.join("former_communes.csv"))?;
    w.write_record(["code_2018", "code", "via"]).map_err(csv_err)?;
    for (old, new, via) in s.former {
        w.write_record([old.as_str(), new.as_str(), via]).map_err(csv_err)?;
    }
    w.flush()?;
    let mut w = csv_writer(&dir.join("edges.csv"))?;
    w.write_record(["a", "b", "kind", "border_km", "distance_km"]).map_err(csv_err)?;
    for (&(i, j), &(kind, km)) in s.edges {
        // Every linked commune has a centroid (its own, or the one derived with its links).
        let d = match (s.centroids[i as usize], s.centroids[j as usize]) {
            (Some(a), Some(b)) => haversine_km(a, b),
            _ => 0.0,
        };
        w.write_record([s.codes[i as usize], s.codes[j as usize], kind, &km.map(|k| format!("{k:.3}")).unwrap_or_default(), &format!("{d:.3}")])
            .map_err(csv_err)?;
    }
    w.flush()?;
    Ok(())
}

/// Step 7. Write the seeds into `opts.seeds_out` (created if missing): the CSV files above and
/// `communes.geojson`; sets `report.communes` and `report.epcis`. Errors: I/O, CSV.
fn write_seeds(opts: &ImportOptions, s: &SeedTables, report: &mut ImportReport) -> Result<()> {
    fs::create_dir_all(&opts.seeds_out)?;
    write_communes_csv(&opts.seeds_out, s, report)?;
    write_epci_csvs(&opts.seeds_out, s)?;
    write_graph_csvs(&opts.seeds_out, s)?;
    write_aliases_csv(&opts.seeds_out, s)?;
    write_shapes(&opts.seeds_out.join("communes.geojson"), s.codes, s.shapes, s.current, report)?;
    report.communes = s.codes.len();
    report.epcis = s.kept_epcis.len();
    Ok(())
}

/// Runs the import and writes its outputs. `progress` is called with (step, done, total).
/// Errors: `Error::Data` for unreadable or malformed inputs, I/O errors writing the outputs.
pub fn run(opts: &ImportOptions, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let cog: Vec<CogCommune> = json(&opts.from.join("cog/communes.json"))?;
    let epcis: Vec<CogEpci> = json(&opts.from.join("cog/epci.json"))?;
    let index = CogIndex::new(&cog, &opts.scope);
    let Polygons2018 { parts, mut former } = polygons_2018_by_current_commune(opts, &index, &mut report, progress)?;
    let postal = postal_index(opts, &cog, &index, &mut report)?;
    let (codes, shapes) = one_multipolygon_per_commune(&index.current, &parts);
    let mut edges = border_edges(&shapes, opts, progress);
    let mut centroids: Vec<Option<(f64, f64)>> = shapes.iter().map(|s| s.centroid().map(|p| (p.x(), p.y()))).collect();
    link_isolated_communes(&codes, &index.current, &centroids, &mut edges, &mut report);
    let (kept_epcis, epci_of) = epcis_of_scope(&epcis, &codes);
    let linked_via = link_communes_without_polygon(&codes, &index.current, &shapes, &mut centroids, &postal, &epci_of, &mut edges, &mut report);
    link_components(&codes, &centroids, &mut edges, &mut report);
    report.border_edges = edges.values().filter(|e| e.0 == "border").count();
    report.nearest_edges = edges.values().filter(|e| e.0 == "nearest").count();
    report.derived_edges = edges.values().filter(|e| e.0 == "derived").count();
    let aliases = aliases(&cog, &codes, &postal, &mut report);
    former.sort();
    let tables = SeedTables {
        codes: &codes,
        current: &index.current,
        shapes: &shapes,
        centroids: &centroids,
        linked_via: &linked_via,
        aliases: &aliases,
        edges: &edges,
        kept_epcis: &kept_epcis,
        epci_of: &epci_of,
        former: &former,
    };
    write_seeds(opts, &tables, &mut report)?;
    if let Some(dir) = &opts.catalog_dir {
        report.lifecycle = import_lifecycles(&opts.from.join("lifecycle"), dir)?;
    }
    fs::write(opts.seeds_out.join("IMPORT_REPORT.md"), render_report(&report, &opts.scope))?;
    Ok(report)
}

/// Connected component label of every node (the smallest node index of its component).
fn components<'a>(n: usize, edges: impl Iterator<Item = &'a (u32, u32)>) -> Vec<usize> {
    let mut uf = petgraph::unionfind::UnionFind::<usize>::new(n);
    for &(a, b) in edges {
        uf.union(a as usize, b as usize);
    }
    let labels = uf.into_labeling();
    let mut smallest: HashMap<usize, usize> = HashMap::new();
    for (i, &l) in labels.iter().enumerate() {
        smallest.entry(l).or_insert(i);
    }
    labels.iter().map(|l| smallest[l]).collect()
}

/// The simplification steps of the map shapes, tried in order until a commune's shape is valid:
/// (Ramer-Douglas-Peucker tolerance in degrees, decimals kept). The first is the default:
/// 0.0005° (≈ 37 m east-west, 55 m north-south in Brittany), coordinates rounded to 4 decimals
/// (≈ 7 m east-west, 11 m north-south). Simplifying and rounding can make a ring cross itself
/// or another ring (a narrow bay, a strait between islands); the next steps keep more of the
/// original shape, down to no simplification at 6 decimals (≈ 10 cm).
pub const MAP_SIMPLIFY_STEPS: [(f64, usize); 7] = [(0.0005, 4), (0.00025, 4), (0.0001, 4), (0.00005, 4), (0.0, 4), (0.0, 5), (0.0, 6)];

/// One commune's shape for maps, as written to `communes.geojson`.
struct MapShape {
    /// Simplified and rounded polygons: valid (OGC simple features, geo's [`Validation`]),
    /// outer rings counter-clockwise and holes clockwise (RFC 7946 §3.1.6), WGS84 degrees.
    shape: MultiPolygon,
    /// Position in [`MAP_SIMPLIFY_STEPS`] of the step that gave a valid shape.
    step: usize,
    /// What was invalid in the source polygons, repaired first (geo's [`MakeValid`]).
    repaired: Option<String>,
}

/// `p` simplified with tolerance `epsilon` (degrees; 0 keeps every vertex) and rounded to
/// `decimals`, with repeated vertices removed; `None` when its outer ring collapses (fewer than
/// 3 distinct points, or no area left: an islet thinner than the tolerance). Holes that
/// collapse are left out.
fn simplify_and_round(p: &Polygon, epsilon: f64, decimals: usize) -> Option<Polygon> {
    use geo::{Area, RemoveRepeatedPoints, Simplify};
    let f = 10f64.powi(decimals as i32);
    let round = |r: &LineString| -> LineString {
        let r = if epsilon > 0.0 { r.simplify(epsilon) } else { r.clone() };
        LineString(r.0.iter().map(|c| Coord { x: (c.x * f).round() / f, y: (c.y * f).round() / f }).collect()).remove_repeated_points()
    };
    let solid = |r: &LineString| r.0.len() >= 4 && Polygon::new(r.clone(), vec![]).unsigned_area() > 0.0;
    let exterior = round(p.exterior());
    if !solid(&exterior) {
        return None;
    }
    let holes = p.interiors().iter().map(round).filter(solid).collect();
    Some(Polygon::new(exterior, holes))
}

/// The map shape of a commune: the first step of [`MAP_SIMPLIFY_STEPS`] whose simplified,
/// rounded and oriented shape is valid and not empty (islets that collapse at a step are left
/// out, as long as something is left). An invalid source is repaired first ([`MakeValid`]).
/// Errors: `Error::Data` when no step gives a valid shape (not met on the 2018 data).
fn map_shape(code: &str, shape: &MultiPolygon) -> Result<MapShape> {
    let errors = shape.validation_errors();
    let repaired = (!errors.is_empty()).then(|| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "));
    let source = if repaired.is_some() { shape.make_valid().map_err(|e| Error::Data(format!("shape of {code}: {e}")))? } else { shape.clone() };
    let mut last = String::new();
    for (step, &(epsilon, decimals)) in MAP_SIMPLIFY_STEPS.iter().enumerate() {
        let simple = MultiPolygon(source.0.iter().filter_map(|p| simplify_and_round(p, epsilon, decimals)).collect()).orient(Direction::Default);
        let errors = simple.validation_errors();
        if !simple.0.is_empty() && errors.is_empty() {
            return Ok(MapShape { shape: simple, step, repaired });
        }
        last = if simple.0.is_empty() { "nothing left".into() } else { errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ") };
    }
    Err(Error::Data(format!("shape of {code}: invalid at every simplification step (last: {last})")))
}

/// Writes the communes' map shapes ([`map_shape`]) as GeoJSON, one feature per line, with the
/// INSEE code as the feature's `id` and in `properties.code`, and the name in
/// `properties.name`; coordinates with the decimals of the step that kept the shape valid.
/// The communes simplified less than the default go to `report.simplified_less`, those whose
/// source polygons were repaired to `report.repaired_shapes`. Errors: I/O, [`map_shape`].
fn write_shapes(path: &Path, codes: &[&str], shapes: &[MultiPolygon], current: &BTreeMap<&str, &CogCommune>, report: &mut ImportReport) -> Result<()> {
    let mut out = String::from("{\"type\":\"FeatureCollection\",\"features\":[\n");
    // A commune without a polygon of its own has no map shape.
    let drawn: Vec<(&str, &MultiPolygon)> = codes.iter().copied().zip(shapes).filter(|(_, s)| !s.0.is_empty()).collect();
    let count = drawn.len();
    for (i, (code, shape)) in drawn.into_iter().enumerate() {
        let MapShape { shape, step, repaired } = map_shape(code, shape)?;
        let nom = &current[code].nom;
        let (epsilon, decimals) = MAP_SIMPLIFY_STEPS[step];
        if step > 0 {
            report.simplified_less.push((code.to_string(), nom.clone(), epsilon, decimals));
        }
        if let Some(why) = repaired {
            report.repaired_shapes.push((code.to_string(), nom.clone(), why));
        }
        let ring = |r: &LineString| format!("[{}]", r.0.iter().map(|c| format!("[{:.*},{:.*}]", decimals, c.x, decimals, c.y)).collect::<Vec<_>>().join(","));
        let polys: Vec<String> = shape
            .0
            .iter()
            .map(|poly| format!("[{}]", std::iter::once(poly.exterior()).chain(poly.interiors()).map(ring).collect::<Vec<_>>().join(",")))
            .collect();
        let name = serde_json::to_string(nom).map_err(|e| Error::Data(e.to_string()))?;
        let _ = write!(
            out,
            "{{\"type\":\"Feature\",\"id\":\"{code}\",\"properties\":{{\"code\":\"{code}\",\"name\":{name}}},\"geometry\":{{\"type\":\"MultiPolygon\",\"coordinates\":[{}]}}}}",
            polys.join(",")
        );
        out.push_str(if i + 1 < count { ",\n" } else { "\n" });
    }
    out.push_str("]}\n");
    fs::write(path, out)?;
    Ok(())
}

fn csv_writer(path: &Path) -> Result<csv::Writer<fs::File>> {
    Ok(csv::Writer::from_writer(fs::File::create(path)?))
}

fn csv_err(e: csv::Error) -> Error {
    Error::Data(format!("csv: {e}"))
}

fn render_report(r: &ImportReport, scope: &ImportArea) -> String {
    let mut s = String::new();
    let scope = match scope {
        ImportArea::All => "all departments".to_string(),
        ImportArea::Region(r) => format!("region {r}"),
    };
    let _ = writeln!(s, "# Import report ({scope})\n\nDerived by `voisinage import` from the shared open data (see `seeds/README.md`).\n");
    let _ = writeln!(
        s,
        "- communes: {}\n- EPCI: {}\n- border edges: {}\n- nearest edges: {}\n- derived edges: {}",
        r.communes, r.epcis, r.border_edges, r.nearest_edges, r.derived_edges
    );
    let _ = writeln!(
        s,
        "- 2018 polygons mapped directly: {}, through chefLieu: {}, through anciensCodes: {}",
        r.mapped_direct, r.mapped_chef_lieu, r.mapped_anciens_codes
    );
    let _ = writeln!(s, "\n## Unmapped 2018 codes ({})\n", r.unmapped.len());
    for (c, n, why) in &r.unmapped {
        let _ = writeln!(s, "- {c} {n}: {why}");
    }
    let _ = writeln!(s, "\n## Current communes without a 2018 polygon of their own, kept and flagged ({})\n", r.without_polygon.len());
    for (c, n, how) in &r.without_polygon {
        let _ = writeln!(s, "- {c} {n}: {how}");
    }
    let _ = writeln!(s, "\n## Other codes and names written to aliases.csv\n");
    for (k, n) in &r.aliases {
        let _ = writeln!(s, "- {k}: {n}");
    }
    let _ = writeln!(s, "\n## Postal file rows naming no current commune ({})\n", r.postal_unresolved.len());
    for (p, c, n) in &r.postal_unresolved {
        let _ = writeln!(s, "- {p} → {c} {n}");
    }
    let _ = writeln!(s, "\n## Communes with no border neighbour, linked to their 2 nearest by centroid ({})\n", r.isolated.len());
    for (c, n) in &r.isolated {
        let _ = writeln!(s, "- {c} {n}");
    }
    let _ = writeln!(s, "\n## Pieces of the graph linked to the rest by their nearest communes ({})\n", r.linked_components.len());
    for (a, b) in &r.linked_components {
        let _ = writeln!(s, "- {a} → {b}");
    }
    let _ = writeln!(s, "\n## Communes in no EPCI ({})\n", r.without_epci.len());
    for (c, n) in &r.without_epci {
        let _ = writeln!(s, "- {c} {n}");
    }
    let _ = writeln!(
        s,
        "\n## Map shapes simplified less than the default (Ramer-Douglas-Peucker {}°, {} decimals), to stay valid ({})\n",
        MAP_SIMPLIFY_STEPS[0].0,
        MAP_SIMPLIFY_STEPS[0].1,
        r.simplified_less.len()
    );
    for (c, n, eps, dec) in &r.simplified_less {
        let _ = writeln!(s, "- {c} {n}: {eps}°, {dec} decimals");
    }
    let _ = writeln!(s, "\n## Map shapes whose source polygons were invalid, repaired first ({})\n", r.repaired_shapes.len());
    for (c, n, why) in &r.repaired_shapes {
        let _ = writeln!(s, "- {c} {n}: {why}");
    }
    if !r.lifecycle.is_empty() {
        let _ = writeln!(s, "\n## Lifecycle generations imported into catalog/generations.toml\n");
        for (p, k) in &r.lifecycle {
            let _ = writeln!(s, "- {p}: {k}");
        }
    }
    s
}

#[derive(Deserialize)]
struct ProductsFile {
    product: Vec<ProductLifecycleRef>,
}

#[derive(Deserialize)]
struct ProductLifecycleRef {
    id: String,
    lifecycle: Option<String>,
    #[serde(default)]
    lifecycle_filter: LifecycleFilter,
}

/// Which endoflife.date release cycles become generations of a product.
#[derive(Deserialize, Default)]
struct LifecycleFilter {
    /// Keep only cycles marked `lts: true` (Firefox ESR lines).
    #[serde(default)]
    lts_only: bool,
    /// Drop cycles whose name ends with one of these (Windows enterprise/IoT editions).
    #[serde(default)]
    exclude_suffixes: Vec<String>,
    /// Drop cycles released before this date (`YYYY-MM-DD`).
    since: Option<String>,
}

#[derive(Deserialize)]
struct LifecycleDoc {
    #[serde(default)]
    releases: Vec<serde_yaml_ng::Value>,
}

fn yaml_str(v: &serde_yaml_ng::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn yaml_bool(v: &serde_yaml_ng::Value, key: &str) -> Option<bool> {
    v.get(key).and_then(|b| b.as_bool())
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Reads `products.toml` in `catalog_dir`, imports the releases of every product that names a
/// `lifecycle` file, and writes `generations.toml` beside it. Returns (product, generations).
fn import_lifecycles(lifecycle_dir: &Path, catalog_dir: &Path) -> Result<Vec<(String, usize)>> {
    let path = catalog_dir.join("products.toml");
    let products: ProductsFile = toml::from_str(&read(&path)?).map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
    let mut out = String::from(
        "# Derived by `voisinage import` from shared/data/lifecycle/*.md\n# (endoflife.date snapshot of 2026-08-22, MIT licence). Do not edit: re-run the import.\n# order: 1 = oldest release; end_of_support: the `eol` date; eol_undated: eol is `true` with no date.\n",
    );
    let mut summary = Vec::new();
    let mut products: Vec<&ProductLifecycleRef> = products.product.iter().filter(|p| p.lifecycle.is_some()).collect();
    products.sort_by(|a, b| a.id.cmp(&b.id));
    for p in products {
        let name = p.lifecycle.as_deref().unwrap_or_default();
        let file = lifecycle_dir.join(format!("{name}.md"));
        let text = read(&file)?;
        let front = text.split("\n---").next().unwrap_or("").trim_start_matches("---");
        let doc: LifecycleDoc = serde_yaml_ng::from_str(front).map_err(|e| Error::Data(format!("{}: {e}", file.display())))?;
        let f = &p.lifecycle_filter;
        let mut gens: Vec<(String, String, &serde_yaml_ng::Value)> = Vec::new();
        for r in &doc.releases {
            let (Some(cycle), Some(date)) = (yaml_str(r, "releaseCycle"), yaml_str(r, "releaseDate")) else {
                continue;
            };
            if !is_date(&date)
                || (f.lts_only && yaml_bool(r, "lts") != Some(true))
                || f.exclude_suffixes.iter().any(|s| cycle.ends_with(s.as_str()))
                || f.since.as_deref().is_some_and(|s| date.as_str() < s)
            {
                continue;
            }
            gens.push((date, cycle, r));
        }
        gens.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (k, (date, cycle, r)) in gens.iter().enumerate() {
            let _ = writeln!(out, "\n[[generation]]\nproduct = {}\nid = {}", toml_str(&p.id), toml_str(cycle));
            let _ = writeln!(out, "label = {}", toml_str(&yaml_str(r, "releaseLabel").unwrap_or_else(|| cycle.clone())));
            let _ = writeln!(out, "order = {}\nreleased = {}", k + 1, toml_str(date));
            match (yaml_str(r, "eol"), yaml_bool(r, "eol")) {
                (Some(d), _) if is_date(&d) => {
                    let _ = writeln!(out, "end_of_support = {}", toml_str(&d));
                }
                (_, Some(true)) => {
                    let _ = writeln!(out, "eol_undated = true");
                }
                _ => {}
            }
            if yaml_bool(r, "lts") == Some(true) {
                let _ = writeln!(out, "lts = true");
            }
            let _ = writeln!(out, "source = {}", toml_str(&format!("endoflife.date 2026-08-22: {name}.md")));
        }
        summary.push((p.id.clone(), gens.len()));
    }
    fs::write(catalog_dir.join("generations.toml"), out)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Winding, polygon};

    #[test]
    fn a_shape_that_rounding_would_make_cross_itself_is_kept_with_more_decimals() {
        // A square 0.01° across with a notch 0.00003° wide (about 2 m): at 4 decimals both
        // walls of the notch fall on x = 0.0050 and the ring runs back over itself.
        let notched = MultiPolygon(vec![polygon![
            (x: 0.0, y: 0.0), (x: 0.01, y: 0.0), (x: 0.01, y: 0.01), (x: 0.00502, y: 0.01), (x: 0.00502, y: 0.002),
            (x: 0.00499, y: 0.002), (x: 0.00499, y: 0.01), (x: 0.0, y: 0.01), (x: 0.0, y: 0.0),
        ]]);
        assert!(notched.is_valid());
        let at_4 = MultiPolygon(notched.0.iter().filter_map(|p| simplify_and_round(p, 0.0, 4)).collect());
        assert!(!at_4.is_valid(), "rounding alone breaks it: {:?}", at_4.validation_errors());
        let m = map_shape("99999", &notched).unwrap();
        assert_eq!(MAP_SIMPLIFY_STEPS[m.step], (0.0, 5));
        assert!(m.shape.is_valid() && m.repaired.is_none());
        assert_eq!(m.shape.0[0].exterior().0.len(), 9, "every vertex kept");
    }

    #[test]
    fn map_shapes_are_counter_clockwise_with_clockwise_holes_and_drop_collapsed_islets() {
        // Clockwise outer ring, counter-clockwise hole (the wrong way round for RFC 7946), and
        // an islet 0.00002° across that 4 decimals reduce to a point.
        let shape = MultiPolygon(vec![
            Polygon::new(
                LineString::from(vec![(0.0, 0.0), (0.0, 0.1), (0.1, 0.1), (0.1, 0.0), (0.0, 0.0)]),
                vec![LineString::from(vec![(0.04, 0.04), (0.06, 0.04), (0.06, 0.06), (0.04, 0.06), (0.04, 0.04)])],
            ),
            polygon![(x: 0.20001, y: 0.20001), (x: 0.20003, y: 0.20001), (x: 0.20002, y: 0.20003), (x: 0.20001, y: 0.20001)],
        ]);
        assert!(shape.0[0].exterior().is_cw() && shape.0[0].interiors()[0].is_ccw());
        let m = map_shape("99999", &shape).unwrap();
        assert_eq!((m.step, m.shape.0.len()), (0, 1), "default step, the islet left out");
        assert!(m.shape.0[0].exterior().is_ccw(), "outer ring counter-clockwise");
        assert!(m.shape.0[0].interiors()[0].is_cw(), "hole clockwise");
        assert_eq!(m.shape.0[0].exterior().0[0], Coord { x: 0.0, y: 0.0 });
    }

    #[test]
    fn an_invalid_source_is_repaired_before_simplifying() {
        // A bow tie: the ring crosses itself at (5, 5); repaired into two triangles.
        let bowtie = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 0.0, y: 10.0), (x: 10.0, y: 0.0), (x: 10.0, y: 10.0), (x: 0.0, y: 0.0)]]);
        let m = map_shape("99999", &bowtie).unwrap();
        assert_eq!(m.repaired.as_deref(), Some("polygon at index 0 is invalid: exterior ring has a self-intersection"));
        assert_eq!((m.step, m.shape.0.len()), (0, 2));
        assert!(m.shape.is_valid());
        assert_eq!(geo::Area::unsigned_area(&m.shape), 50.0);
    }
}
