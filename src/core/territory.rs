//! Communes, EPCI and the neighbour graph (petgraph), built from the committed seeds.
//!
//! Sources: INSEE COG 2026 (communes, EPCI, populations) and IGN Admin Express COG 2018
//! polygons, derived by `voisinage import` into `seeds/` (see `seeds/README.md`).

use std::collections::HashMap;
use std::sync::OnceLock;

use geo::{Distance, Haversine, Point};
use petgraph::graph::{NodeIndex, UnGraph};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};

use crate::core::domain::{InseeCode, Siren, SizeClass};
use crate::core::packed::{put_varint, varint};
use crate::core::scratch::Seen;
use crate::error::{Error, Result};

/// Index of a commune in [`Territory::communes`] (and its node index in the graph).
pub type CommuneIdx = u32;

/// A current commune (COG 2026).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Commune {
    /// INSEE code.
    pub code: InseeCode,
    /// Official name, UTF-8 (`Hœdic`, `Île-d'Arz`): shared, so that an answer naming the
    /// commune (an evidence row) holds it without copying it.
    #[schema(value_type = String)]
    pub name: std::sync::Arc<str>,
    /// Department code (`35`, `2A`).
    pub department: String,
    /// Population municipale (INSEE, COG 2026 vintage).
    pub population: u32,
    /// SIREN of the EPCI the commune belongs to; `None` for the few communes outside any EPCI
    /// (Île-de-Bréhat, Île-de-Sein, Ouessant).
    pub epci: Option<Siren>,
    /// Centroid (longitude, latitude), WGS84 degrees: planar centroid of the 2018 polygons, or
    /// derived for a commune without a polygon of its own (see [`Place`]); `None` when no place
    /// can be derived (overseas collectivities the polygons do not cover).
    pub centroid: Option<(f64, f64)>,
    /// Area in km², geodesic, from the 2018 polygons; `None` without a polygon of its own.
    pub area_km2: Option<f64>,
    /// Where the commune's place on the map comes from.
    pub place: Place,
    /// 2018 codes of former communes merged into this one (commune nouvelle), sorted.
    pub former_codes: Vec<InseeCode>,
}

/// Where a commune's place (centroid, neighbours) comes from. Source: `communes.csv`
/// (`polygon`, `linked_via`), written by the importer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Place {
    /// Its own 2018 polygon (IGN Admin Express COG 2018): centroid, area and borders.
    Polygon,
    /// No polygon of its own (re-created since 2018, like L'Oie 85165): part of this commune's
    /// 2018 polygon (**derived**: it shares a postal code and the EPCI, and has the largest 2018
    /// area among those), whose centroid it takes; linked to it and to its neighbours.
    PartOf {
        /// The commune whose 2018 polygon covered it.
        commune: InseeCode,
    },
    /// No polygon of its own and no commune of its EPCI sharing its postal code: linked to the
    /// communes of its postal codes, centroid the mean of theirs.
    PostalCode {
        /// Its postal codes (`14940`).
        postal_codes: Vec<String>,
    },
    /// No polygon and nothing to derive a place from: no centroid, no neighbour.
    Unknown,
}

impl Commune {
    /// Population class of the commune.
    pub fn size_class(&self) -> SizeClass {
        SizeClass::of(self.population)
    }
}

/// A member of an EPCI, as listed by INSEE (members outside the seeded region included).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EpciMember {
    /// INSEE code of the member commune.
    pub code: InseeCode,
    /// Name of the member commune.
    pub name: String,
    /// Population (INSEE population municipale).
    pub population: u32,
    /// Whether the member is one of the seeded communes (false for members in another region).
    pub in_seeds: bool,
}

/// An établissement public de coopération intercommunale à fiscalité propre.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Epci {
    /// SIREN of the EPCI.
    pub siren: Siren,
    /// Name (`Rennes Métropole`).
    pub name: String,
    /// Legal form as INSEE spells it: `CC`, `CA`, `CU`, `METRO` (or `MET69` for Lyon).
    pub kind: String,
    /// Total population of its members (sum of the members' populations, the seeded ones as
    /// in `communes.csv`).
    pub population: u32,
    /// Members, largest first.
    pub members: Vec<EpciMember>,
}

/// Why two communes are linked in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The two polygons share a border.
    Border,
    /// The commune touches nobody (an island): linked to its nearest communes by centroid.
    Nearest,
    /// A commune without a polygon of its own, linked to the commune it was part of and that
    /// one's neighbours, or to the communes of its postal code (see [`Place`]).
    Derived,
}

/// An edge of the neighbour graph.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct Edge {
    /// Border or nearest-centroid link.
    pub kind: EdgeKind,
    /// Length of the shared border in km (`None` for `nearest` edges).
    pub border_km: Option<f64>,
    /// Distance between centroids in km (haversine).
    pub distance_km: f64,
}

/// A neighbour reached from a commune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// The neighbour.
    pub idx: CommuneIdx,
    /// Number of graph edges on the shortest path (1 = direct neighbour).
    pub hops: u32,
}

/// Radius in edges of the walks [`Territory`] keeps: the recommender's default `hops`
/// (`recommend::Params::default`), its first step's reach. A walk of this radius or less is read
/// from them ([`Territory::within_hops`]); a larger one walks the graph.
pub const WALKS_KEPT_TO: u32 = 6;

/// Each commune's [`Territory::within_hops`] at one radius, made the first time the commune's
/// walk is asked and kept, so that a recommendation reads its commune's reach instead of
/// walking the graph and sorting the walk (issue 17: "the precomputed reach per commune for the
/// default radius"). Made when asked rather than all at once when the territory is read: the
/// 7.1 MB they take for the whole of France would put the service over its memory goal when
/// ready (300 MB); an empty table takes 24 bytes a commune (840 kB nationally), and a service
/// whose users ask for a few departments keeps only theirs.
///
/// A commune's walk, for each number of hops from 1 to the radius: the number of communes at
/// that many hops, then their ranks in code order ([`Territory::code_rank`]), increasing, each
/// as the difference from the one before (the first from 0); every number an LEB128 varint
/// ([`crate::core::packed::put_varint`]). Neighbouring communes have close codes, so a commune of a walk takes 1.13 bytes on
/// average: 7.1 MB for the 6,245,960 communes of the 34,969 walks of France at 6 edges (against
/// 25 MB as `u32`s).
#[derive(Debug, Default)]
struct KeptWalks {
    /// The radius of the walks kept; 0 for none.
    radius: u32,
    /// Each commune's walk, once made.
    walks: Vec<OnceLock<Box<[u8]>>>,
}

impl KeptWalks {
    /// An empty table for the `communes` of a territory, walks of `radius` edges.
    fn new(communes: usize, radius: u32) -> KeptWalks {
        KeptWalks { radius, walks: (0..communes).map(|_| OnceLock::new()).collect() }
    }

    /// The walk kept of commune `idx` to `max_hops` edges into `out` (cleared first): the first
    /// `max_hops` rings of its walk, made first if it is not yet ([`Territory::walk_within_hops_into`],
    /// which it gives back exactly). `false` (and `out` untouched) when `max_hops` is beyond
    /// the radius kept or `idx` is not a commune of `t`.
    fn read(&self, t: &Territory, idx: CommuneIdx, max_hops: u32, out: &mut Vec<Neighbour>) -> bool {
        let Some(cell) = self.walks.get(idx as usize) else { return false };
        if max_hops > self.radius {
            return false;
        }
        let mut bytes: &[u8] = cell.get_or_init(|| self.encode(t, idx));
        out.clear();
        // The bytes are `encode`'s, whole: every varint is there.
        let mut next = || varint(&mut bytes).unwrap_or(0) as usize;
        for hops in 1..=max_hops {
            let k = next();
            let mut rank = 0;
            for _ in 0..k {
                rank += next();
                out.push(Neighbour { idx: t.by_code[rank], hops });
            }
        }
        true
    }

    /// Commune `idx`'s walk to the radius, encoded.
    fn encode(&self, t: &Territory, idx: CommuneIdx) -> Box<[u8]> {
        let mut walk = Vec::new();
        t.walk_within_hops_into(idx, self.radius, &mut walk);
        let mut bytes = Vec::with_capacity(walk.len() + 2 * self.radius as usize);
        let mut ring = walk.as_slice();
        for hops in 1..=self.radius {
            let k = ring.iter().take_while(|nb| nb.hops == hops).count();
            put_varint(&mut bytes, k as u64);
            let mut rank = 0;
            for nb in &ring[..k] {
                let r = t.code_rank[nb.idx as usize];
                put_varint(&mut bytes, u64::from(r - rank));
                rank = r;
            }
            ring = &ring[k..];
        }
        bytes.into_boxed_slice()
    }

    /// Bytes held by the walks made so far (their encodings only).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.walks.iter().filter_map(OnceLock::get).map(|w| w.len()).sum()
    }
}

/// What another code or name of a commune is. Source: `aliases.csv` (INSEE COG 2026 and the
/// postal file `codes-postaux` 4.1.2), written by the importer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AliasKind {
    /// A commune déléguée of a commune nouvelle (Antrain, 35004, of Val-Couesnon).
    Delegated,
    /// A commune associée (COG `commune-associee`).
    Associated,
    /// An arrondissement municipal of Paris, Lyon or Marseille (75101 of Paris 75056).
    Arrondissement,
    /// A former INSEE code of a commune nouvelle (`anciensCodes`), with no delegated commune.
    FormerCode,
    /// A postal code the commune is served by (29200 for Brest 29019); one postal code can
    /// serve several communes.
    PostalCode,
}

impl AliasKind {
    /// The kind as the API and `aliases.csv` spell it: `postal_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            AliasKind::Delegated => "delegated",
            AliasKind::Associated => "associated",
            AliasKind::Arrondissement => "arrondissement",
            AliasKind::FormerCode => "former_code",
            AliasKind::PostalCode => "postal_code",
        }
    }

    /// French words for the page and the hit's label: `commune déléguée`.
    pub fn fr(self) -> &'static str {
        match self {
            AliasKind::Delegated => "commune déléguée",
            AliasKind::Associated => "commune associée",
            AliasKind::Arrondissement => "arrondissement municipal",
            AliasKind::FormerCode => "ancien code",
            AliasKind::PostalCode => "code postal",
        }
    }

    /// English words for API details: `delegated commune`.
    pub fn en(self) -> &'static str {
        match self {
            AliasKind::Delegated => "delegated commune (commune déléguée)",
            AliasKind::Associated => "associated commune (commune associée)",
            AliasKind::Arrondissement => "arrondissement municipal",
            AliasKind::FormerCode => "former INSEE code",
            AliasKind::PostalCode => "postal code",
        }
    }
}

/// Another code or name by which people know a current commune.
#[derive(Clone, Debug)]
pub struct Alias {
    /// What it is.
    pub kind: AliasKind,
    /// The code (INSEE code of the delegated commune or arrondissement, former code, postal
    /// code), upper case.
    pub code: String,
    /// Its name (`Antrain`, `Paris 1er Arrondissement`); for a postal code, the name the postal
    /// file gives when it names another commune than the current one; may be empty.
    pub name: String,
    /// The current commune.
    pub commune: CommuneIdx,
}

/// How a search hit matched the query.
#[derive(Clone, Debug, PartialEq)]
pub enum Match {
    /// The INSEE code (any case).
    Code,
    /// The name (accents, case, hyphens, `St`/`Saint`, leading article aside).
    Name,
    /// The name within a small edit distance (a typo).
    ApproximateName,
    /// Another code or name of the commune; the index in [`Territory::aliases`].
    Alias(usize),
}

/// A commune found by [`Territory::search`], and how.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The commune.
    pub idx: CommuneIdx,
    /// How it matched.
    pub matched: Match,
}

/// One page of search hits and how many there are in all.
#[derive(Clone, Debug)]
pub struct SearchPage {
    /// Hits in rank order, `offset` to `offset + limit`.
    pub hits: Vec<SearchHit>,
    /// Number of communes matching, all pages together.
    pub total: usize,
}

/// The reference territory: communes, EPCI and their neighbour graph.
#[derive(Debug)]
pub struct Territory {
    communes: Vec<Commune>,
    /// [`search_key`] of each commune's name, same order.
    keys: Vec<String>,
    aliases: Vec<Alias>,
    /// [`search_key`] of each alias name, same order.
    alias_keys: Vec<String>,
    /// Alias code (upper case) → indices in `aliases`.
    alias_by_code: HashMap<String, Vec<usize>>,
    /// Per commune, its indices in `aliases`.
    alias_by_commune: Vec<Vec<usize>>,
    /// [`search_key`] of each EPCI's name, same order as `epcis`.
    epci_keys: Vec<String>,
    /// Each commune's index by its code's [`InseeCode::slot`] (`u32::MAX` for none), filled as
    /// the communes are read: what [`Territory::idx_of`] reads, without hashing.
    by_slot: Vec<CommuneIdx>,
    graph: UnGraph<CommuneIdx, Edge>,
    /// The graph's adjacency in CSR form, for the walks of the hot path: the neighbours of
    /// commune `i` are `adjacency[adjacency_start[i]..adjacency_start[i + 1]]` (one entry per
    /// edge end; `communes.len() + 1` offsets).
    adjacency_start: Vec<u32>,
    adjacency: Vec<CommuneIdx>,
    /// Rank of each commune in INSEE code order (sorting by it sorts by code, comparing `u32`s).
    code_rank: Vec<u32>,
    /// The communes in INSEE code order: the commune of each rank ([`Territory::code_rank`]'s
    /// inverse).
    by_code: Vec<CommuneIdx>,
    /// Each commune's walk to [`WALKS_KEPT_TO`] edges, made when first asked ([`KeptWalks`]).
    walks: KeptWalks,
    /// This territory's number, unique in the process ([`Territory::uid`]).
    uid: u64,
    /// Each commune's INSEE code, by index: 5 bytes a commune, what the hot path reads of a
    /// commune of a reach (instead of its whole record).
    codes: Vec<InseeCode>,
    /// What a kernel weight and a wide search read of each commune, by index, in one
    /// record: its place, EPCI, department and population class ([`CommunePlace`], 32 bytes).
    places: Vec<CommunePlace>,
    /// Number of communes per department code, and per population class.
    department_size: HashMap<String, usize>,
    size_class_size: HashMap<SizeClass, usize>,
    epcis: Vec<Epci>,
    epci_by_siren: HashMap<Siren, usize>,
    members_in_seeds: HashMap<Siren, Vec<CommuneIdx>>,
}

#[derive(Deserialize)]
struct CommuneRow {
    code: String,
    name: String,
    department: String,
    population: u32,
    epci_siren: String,
    lon: Option<f64>,
    lat: Option<f64>,
    area_km2: Option<f64>,
    /// `own` or `none` (seeds of an older importer have no such column: `own`).
    #[serde(default)]
    polygon: Option<String>,
    /// `part_of:85084`, `postal_code:14940 14941`, or empty.
    #[serde(default)]
    linked_via: Option<String>,
}

#[derive(Deserialize)]
struct AliasRow {
    kind: AliasKind,
    code: String,
    name: String,
    commune: String,
}

#[derive(Deserialize)]
struct EpciRow {
    siren: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    population: u32,
}

#[derive(Deserialize)]
struct MemberRow {
    epci_siren: String,
    code: String,
    name: String,
    population: u32,
}

#[derive(Deserialize)]
struct FormerRow {
    code_2018: String,
    code: String,
}

#[derive(Deserialize)]
struct EdgeRow {
    a: String,
    b: String,
    kind: EdgeKind,
    border_km: Option<f64>,
    distance_km: f64,
}

fn rows<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<Vec<T>> {
    csv::Reader::from_reader(text.as_bytes()).deserialize().collect::<std::result::Result<Vec<T>, _>>().map_err(|e| Error::Data(format!("{name}: {e}")))
}

fn data<T>(r: Result<T>, what: &str) -> Result<T> {
    r.map_err(|e| Error::Data(format!("{what}: {e}")))
}

impl Territory {
    /// Builds the territory from the text of the seed CSV files (`communes.csv`, `epcis.csv`,
    /// `epci_members.csv`, `edges.csv`, `former_communes.csv`, `aliases.csv`, as written by the
    /// importer).
    ///
    /// Errors: `Error::Data` when a file does not parse or a row names an unknown commune.
    pub fn from_csv(communes: &str, epcis: &str, members: &str, edges: &str, former: &str, aliases: &str) -> Result<Self> {
        let mut t = Territory {
            communes: Vec::new(),
            keys: Vec::new(),
            aliases: Vec::new(),
            alias_keys: Vec::new(),
            alias_by_code: HashMap::new(),
            alias_by_commune: Vec::new(),
            epci_keys: Vec::new(),
            by_slot: vec![CommuneIdx::MAX; InseeCode::SLOTS],
            graph: UnGraph::default(),
            adjacency_start: Vec::new(),
            adjacency: Vec::new(),
            code_rank: Vec::new(),
            by_code: Vec::new(),
            walks: KeptWalks::default(),
            uid: 0,
            codes: Vec::new(),
            places: Vec::new(),
            department_size: HashMap::new(),
            size_class_size: HashMap::new(),
            epcis: Vec::new(),
            epci_by_siren: HashMap::new(),
            members_in_seeds: HashMap::new(),
        };
        for r in rows::<CommuneRow>("communes.csv", communes)? {
            let code = data(InseeCode::parse(&r.code), "communes.csv")?;
            let epci = if r.epci_siren.is_empty() { None } else { Some(data(Siren::parse(&r.epci_siren), "communes.csv")?) };
            let idx = t.communes.len() as CommuneIdx;
            t.by_slot[code.slot()] = idx;
            t.graph.add_node(idx);
            if let Some(s) = epci {
                t.members_in_seeds.entry(s).or_default().push(idx);
            }
            let place = match (r.polygon.as_deref().unwrap_or("own"), r.linked_via.as_deref().unwrap_or("").split_once(':')) {
                ("own", _) => Place::Polygon,
                (_, Some(("part_of", c))) => Place::PartOf { commune: data(InseeCode::parse(c), "communes.csv")? },
                (_, Some(("postal_code", p))) => Place::PostalCode { postal_codes: p.split_whitespace().map(str::to_string).collect() },
                _ => Place::Unknown,
            };
            t.keys.push(search_key(&r.name));
            t.communes.push(Commune {
                code,
                name: r.name.into(),
                department: r.department,
                population: r.population,
                epci,
                centroid: r.lon.zip(r.lat),
                area_km2: r.area_km2,
                place,
                former_codes: Vec::new(),
            });
        }
        for r in rows::<EpciRow>("epcis.csv", epcis)? {
            let siren = data(Siren::parse(&r.siren), "epcis.csv")?;
            t.epci_by_siren.insert(siren, t.epcis.len());
            t.epcis.push(Epci { siren, name: r.name, kind: r.kind, population: r.population, members: Vec::new() });
        }
        for r in rows::<MemberRow>("epci_members.csv", members)? {
            let siren = data(Siren::parse(&r.epci_siren), "epci_members.csv")?;
            let code = data(InseeCode::parse(&r.code), "epci_members.csv")?;
            let i = *t.epci_by_siren.get(&siren).ok_or_else(|| Error::Data(format!("epci_members.csv: unknown EPCI {siren}")))?;
            // A seeded member shows the same population as its commune record (one source).
            let seeded = t.idx_of(&code).map(|j| t.communes[j as usize].population);
            t.epcis[i].members.push(EpciMember { code, name: r.name, population: seeded.unwrap_or(r.population), in_seeds: seeded.is_some() });
        }
        for e in &mut t.epcis {
            // One population source: the sum of the members' populations as listed above.
            e.population = e.members.iter().map(|m| m.population).sum();
            e.members.sort_by(|a, b| b.population.cmp(&a.population).then(a.code.cmp(&b.code)));
        }
        for r in rows::<EdgeRow>("edges.csv", edges)? {
            let a = t.idx_of(&data(InseeCode::parse(&r.a), "edges.csv")?).ok_or_else(|| Error::Data(format!("edges.csv: unknown commune {}", r.a)))?;
            let b = t.idx_of(&data(InseeCode::parse(&r.b), "edges.csv")?).ok_or_else(|| Error::Data(format!("edges.csv: unknown commune {}", r.b)))?;
            t.graph.add_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize), Edge { kind: r.kind, border_km: r.border_km, distance_km: r.distance_km });
        }
        for r in rows::<FormerRow>("former_communes.csv", former)? {
            let old = data(InseeCode::parse(&r.code_2018), "former_communes.csv")?;
            let i = t
                .idx_of(&data(InseeCode::parse(&r.code), "former_communes.csv")?)
                .ok_or_else(|| Error::Data(format!("former_communes.csv: unknown commune {}", r.code)))?;
            t.communes[i as usize].former_codes.push(old);
        }
        for c in &mut t.communes {
            c.former_codes.sort();
        }
        t.epci_keys = t.epcis.iter().map(|e| search_key(&e.name)).collect();
        t.alias_by_commune = vec![Vec::new(); t.communes.len()];
        for r in rows::<AliasRow>("aliases.csv", aliases)? {
            let commune = t
                .idx_of(&data(InseeCode::parse(&r.commune), "aliases.csv")?)
                .ok_or_else(|| Error::Data(format!("aliases.csv: unknown commune {}", r.commune)))?;
            let code = r.code.to_ascii_uppercase();
            t.alias_by_code.entry(code.clone()).or_default().push(t.aliases.len());
            t.alias_by_commune[commune as usize].push(t.aliases.len());
            t.alias_keys.push(if r.kind == AliasKind::PostalCode { String::new() } else { search_key(&r.name) });
            t.aliases.push(Alias { kind: r.kind, code, name: r.name, commune });
        }
        // Grown by doubling while read: give back the spare capacity (about 6 MB nationally).
        t.communes.shrink_to_fit();
        t.keys.shrink_to_fit();
        t.aliases.shrink_to_fit();
        t.alias_keys.shrink_to_fit();
        t.graph.shrink_to_fit();
        t.index_graph();
        Ok(t)
    }

    /// Builds the CSR adjacency and the code ranks from the graph and the communes.
    fn index_graph(&mut self) {
        let n = self.communes.len();
        let mut degree = vec![0u32; n + 1];
        for e in self.graph.edge_references() {
            degree[e.source().index()] += 1;
            degree[e.target().index()] += 1;
        }
        let mut start = Vec::with_capacity(n + 1);
        let mut total = 0u32;
        for d in &degree[..n] {
            start.push(total);
            total += d;
        }
        start.push(total);
        let mut fill = start.clone();
        let mut adjacency = vec![0 as CommuneIdx; total as usize];
        for e in self.graph.edge_references() {
            let (a, b) = (e.source().index(), e.target().index());
            adjacency[fill[a] as usize] = b as CommuneIdx;
            fill[a] += 1;
            adjacency[fill[b] as usize] = a as CommuneIdx;
            fill[b] += 1;
        }
        let mut by_code: Vec<u32> = (0..n as u32).collect();
        by_code.sort_by_key(|&i| self.communes[i as usize].code);
        let mut code_rank = vec![0u32; n];
        for (rank, &i) in by_code.iter().enumerate() {
            code_rank[i as usize] = rank as u32;
        }
        self.adjacency_start = start;
        self.adjacency = adjacency;
        self.code_rank = code_rank;
        self.by_code = by_code;
        self.codes = self.communes.iter().map(|c| c.code).collect();
        let mut departments: HashMap<&str, u16> = HashMap::new();
        let mut epcis: HashMap<Siren, u32> = HashMap::new();
        self.places = self
            .communes
            .iter()
            .map(|c| {
                let (next_department, next_epci) = (departments.len() as u16, epcis.len() as u32);
                CommunePlace {
                    unit: c.centroid.map_or([f64::NAN; 3], unit_vector),
                    epci: c.epci.map_or(u32::MAX, |s| *epcis.entry(s).or_insert(next_epci)),
                    department: *departments.entry(c.department.as_str()).or_insert(next_department),
                    size: c.size_class(),
                }
            })
            .collect();
        for c in &self.communes {
            *self.department_size.entry(c.department.clone()).or_default() += 1;
            *self.size_class_size.entry(c.size_class()).or_default() += 1;
        }
        self.walks = KeptWalks::new(self.communes.len(), WALKS_KEPT_TO);
        static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.uid = NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A number that no other territory made by this process has (never 0): what a value
    /// derived from this territory's communes and graph, kept outside it, is keyed by (the
    /// distances of a reach that a thread keeps, [`crate::core::recommend`]). A territory does not change once
    /// made.
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Number of communes of a department (0 for an unknown code).
    pub fn department_size(&self, department: &str) -> usize {
        self.department_size.get(department).copied().unwrap_or(0)
    }

    /// Number of communes of a population class.
    pub fn size_class_size(&self, class: SizeClass) -> usize {
        self.size_class_size.get(&class).copied().unwrap_or(0)
    }

    /// The direct neighbours of a commune, in no particular order (CSR slice; empty for an
    /// index out of the territory).
    pub fn adjacent(&self, idx: CommuneIdx) -> &[CommuneIdx] {
        let i = idx as usize;
        match (self.adjacency_start.get(i), self.adjacency_start.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.adjacency[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Every other code and name of the communes (delegated and associated communes,
    /// arrondissements municipaux, former codes, postal codes), in `aliases.csv` order.
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// The other codes and names of a commune, in `aliases.csv` order (kind, code, name).
    pub fn aliases_of_commune(&self, idx: CommuneIdx) -> impl Iterator<Item = &Alias> {
        self.alias_by_commune.get(idx as usize).into_iter().flatten().map(|&i| &self.aliases[i])
    }

    /// The other codes equal to `code` (upper-cased): what a user who typed a postal code, an
    /// arrondissement's or a delegated commune's code probably meant, a former code last, each
    /// commune once per kind. Empty when none.
    pub fn aliases_of_code(&self, code: &str) -> Vec<&Alias> {
        let mut v: Vec<&Alias> =
            self.alias_by_code.get(&code.trim().to_ascii_uppercase()).map(|v| v.iter().map(|&i| &self.aliases[i]).collect()).unwrap_or_default();
        v.sort_by_key(|a| a.kind == AliasKind::FormerCode);
        v.dedup_by(|a, b| a.kind == b.kind && a.commune == b.commune);
        v
    }

    /// EPCI whose SIREN is `query` or whose name contains it (compared by [`search_key`]), by
    /// SIREN; none for a query without a letter or digit.
    pub fn search_epcis(&self, query: &str) -> Vec<&Epci> {
        let (key, siren) = (search_key(query), query.trim());
        self.epcis.iter().zip(&self.epci_keys).filter(|(e, k)| e.siren.as_str() == siren || (!key.is_empty() && k.contains(&key))).map(|(e, _)| e).collect()
    }

    /// All communes, in seed order (sorted by INSEE code).
    pub fn communes(&self) -> &[Commune] {
        &self.communes
    }

    /// The commune at an index. Panics never: indices only come from this territory.
    pub fn commune(&self, idx: CommuneIdx) -> &Commune {
        &self.communes[idx as usize]
    }

    /// The INSEE code of the commune at `idx` (its [`Commune::code`], read from a dense array).
    /// Panics if `idx` is not an index of this territory.
    pub fn code(&self, idx: CommuneIdx) -> &InseeCode {
        &self.codes[idx as usize]
    }

    /// What a kernel weight and a wide search read of commune `i` (a 32-byte [`CommunePlace`]).
    /// Panics if `i` is not an index of this territory.
    fn place(&self, i: CommuneIdx) -> &CommunePlace {
        &self.places[i as usize]
    }

    /// Asks for commune `i`'s place (the 32-byte record that its kernel weight and a wide
    /// search read) ahead of them ([`crate::core::shared::prefetch`]); nothing for an index
    /// out of the territory.
    #[inline]
    pub fn prefetch_place(&self, i: CommuneIdx) {
        if let Some(p) = self.places.get(i as usize) {
            crate::core::shared::prefetch(p);
        }
    }

    /// Asks for commune `i`'s record ([`Territory::commune`]) ahead of its reading
    /// ([`crate::core::shared::prefetch`]); nothing for an index out of the territory.
    #[inline]
    pub fn prefetch_commune(&self, i: CommuneIdx) {
        if let Some(c) = self.communes.get(i as usize) {
            crate::core::shared::prefetch(c);
        }
    }

    /// Whether communes `a` and `b` are of the same department.
    pub fn same_department(&self, a: CommuneIdx, b: CommuneIdx) -> bool {
        self.place(a).same_department(self.place(b))
    }

    /// Whether communes `a` and `b` are members of the same EPCI (`false` when `a` is of none).
    pub fn same_epci(&self, a: CommuneIdx, b: CommuneIdx) -> bool {
        self.place(a).same_epci(self.place(b))
    }

    /// The population class of commune `i` ([`Commune::size_class`]).
    pub fn size_class_of(&self, i: CommuneIdx) -> SizeClass {
        self.place(i).size
    }

    /// Index of a commune by INSEE code; `None` when the code is not a seeded commune.
    pub fn idx_of(&self, code: &InseeCode) -> Option<CommuneIdx> {
        self.by_slot.get(code.slot()).copied().filter(|&i| i != CommuneIdx::MAX)
    }

    /// A commune by code, or `Error::NotFound` (naming the commune nouvelle when the code is
    /// that of a former commune merged since 2018).
    ///
    /// A code that is another code of a commune says which commune(s) it probably means: a
    /// postal code (`29200`: "29200 is not an INSEE commune code; as a postal code it serves
    /// 29019 Brest"), an arrondissement municipal (`75101` → 75056 Paris), a delegated
    /// commune or a former code.
    pub fn find(&self, code: &InseeCode) -> Result<CommuneIdx> {
        self.idx_of(code).ok_or_else(|| {
            let aliases = self.aliases_of_code(code.as_str());
            let mut meant: Vec<String> = Vec::new();
            let served: Vec<String> = aliases
                .iter()
                .filter(|a| a.kind == AliasKind::PostalCode)
                .map(|a| format!("{} {}", self.commune(a.commune).code, self.commune(a.commune).name))
                .fold(Vec::new(), |mut v, x| {
                    if !v.contains(&x) {
                        v.push(x);
                    }
                    v
                });
            if !served.is_empty() {
                meant.push(format!("as a postal code it serves {}", served.join(", ")));
            }
            for a in aliases.iter().filter(|a| a.kind != AliasKind::PostalCode) {
                let c = self.commune(a.commune);
                let what = match a.kind {
                    AliasKind::FormerCode => format!("it is a former code of {} {}", c.code, c.name),
                    k => format!("it is the {} {} of {} {}", k.en(), a.name, c.code, c.name),
                };
                if !meant.contains(&what) {
                    meant.push(what);
                }
            }
            if let Some(c) = self.communes.iter().find(|c| c.former_codes.contains(code)).filter(|_| meant.is_empty()) {
                return Error::NotFound(format!("{code} is a former commune, now part of {} {}", c.code, c.name));
            }
            if meant.is_empty() {
                Error::NotFound(format!("no commune with INSEE code {code} in this territory"))
            } else {
                Error::NotFound(format!("{code} is not the INSEE code of a current commune; {}", meant.join("; ")))
            }
        })
    }

    /// All EPCI, sorted by SIREN.
    pub fn epcis(&self) -> &[Epci] {
        &self.epcis
    }

    /// An EPCI by SIREN, or `Error::NotFound`.
    pub fn epci(&self, siren: &Siren) -> Result<&Epci> {
        self.epci_by_siren.get(siren).map(|&i| &self.epcis[i]).ok_or_else(|| Error::NotFound(format!("no EPCI with SIREN {siren} in this territory")))
    }

    /// Checks that what a token scope names is in this territory: the commune (see
    /// [`Territory::find`]) or the EPCI. Errors: `NotFound`.
    pub fn check_scope(&self, scope: &crate::core::auth::TokenScope) -> Result<()> {
        use crate::core::auth::TokenScope;
        match scope {
            TokenScope::Commune(c) => self.find(c).map(drop),
            TokenScope::Epci(e) => self.epci(e).map(drop),
            TokenScope::Admin => Ok(()),
        }
    }

    /// Seeded communes that are members of an EPCI (empty for an unknown SIREN), by code.
    pub fn members(&self, siren: &Siren) -> &[CommuneIdx] {
        self.members_in_seeds.get(siren).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Direct neighbours of a commune with the edge that links them, sorted by INSEE code.
    pub fn neighbours(&self, idx: CommuneIdx) -> Vec<(CommuneIdx, Edge)> {
        let mut v: Vec<_> = self
            .graph
            .edges(NodeIndex::new(idx as usize))
            .map(|e| {
                let other = if e.source().index() == idx as usize { e.target() } else { e.source() };
                (other.index() as CommuneIdx, *e.weight())
            })
            .collect();
        v.sort_by_key(|(i, _)| self.communes[*i as usize].code);
        v
    }

    /// Whether the commune has at least one border neighbour.
    pub fn has_border_neighbour(&self, idx: CommuneIdx) -> bool {
        self.graph.edges(NodeIndex::new(idx as usize)).any(|e| e.weight().kind == EdgeKind::Border)
    }

    /// Communes within `max_hops` edges of `idx` (excluding `idx` itself), breadth-first, each
    /// with its hop count; sorted by hops then INSEE code. `max_hops = 0` gives an empty list.
    pub fn within_hops(&self, idx: CommuneIdx, max_hops: u32) -> Vec<Neighbour> {
        // Sized for the usual walk of the recommender (6 edges: 100 to 300 communes), not grown
        // from empty.
        let mut out = Vec::with_capacity(256);
        self.within_hops_into(idx, max_hops, &mut out);
        out
    }

    /// [`Territory::within_hops`] into `out` (cleared first): the hot path's walk, read from the
    /// walk kept for the commune (made the first time it is asked) up to [`WALKS_KEPT_TO`]
    /// edges, else walked over the graph.
    pub fn within_hops_into(&self, idx: CommuneIdx, max_hops: u32, out: &mut Vec<Neighbour>) {
        if !self.walks.read(self, idx, max_hops, out) {
            self.walk_within_hops_into(idx, max_hops, out);
        }
    }

    /// [`Territory::within_hops_into`] by walking the graph, whatever [`KeptWalks`] holds: over
    /// the CSR adjacency with the thread's scratch set of communes seen (one bit a commune:
    /// nothing the size of the territory allocated or zeroed), sorted by hops then code rank.
    /// The list itself is the queue of the walk.
    fn walk_within_hops_into(&self, idx: CommuneIdx, max_hops: u32, out: &mut Vec<Neighbour>) {
        out.clear();
        let mut seen = Seen::take(self.communes.len());
        seen.insert(idx);
        // The origin is not in `out`: its neighbours are read first, then `out` is walked in
        // order (breadth-first: hops never decrease along it).
        let mut next = 0usize;
        let mut from = Some((idx, 0u32));
        while let Some((n, h)) = from {
            if h < max_hops {
                for &m in self.adjacent(n) {
                    if seen.insert(m) {
                        out.push(Neighbour { idx: m, hops: h + 1 });
                    }
                }
            }
            from = out.get(next).map(|nb| (nb.idx, nb.hops));
            next += 1;
        }
        if max_hops > 15 || self.communes.len() >= 1 << 28 {
            out.sort_unstable_by_key(|nb| (nb.hops, self.code_rank[nb.idx as usize]));
            return;
        }
        // Sorted as packed keys, each commune's code rank read once (not at every comparison):
        // hops (at most 15) in the top 4 bits, the rank (below 2^28) in the next 28, the commune
        // in the low 32.
        let mut keys: Vec<u64> =
            out.iter().map(|nb| (u64::from(nb.hops) << 60) | (u64::from(self.code_rank[nb.idx as usize]) << 32) | u64::from(nb.idx)).collect();
        keys.sort_unstable();
        for (nb, k) in out.iter_mut().zip(keys) {
            *nb = Neighbour { idx: k as u32, hops: (k >> 60) as u32 };
        }
    }

    /// Distance in km between the centroids of two communes (great circle, mean Earth radius:
    /// [`haversine_km`] within 1e-9 km, from their points of the unit sphere); `None` when one
    /// has no centroid (it then has no neighbour either).
    pub fn distance_km(&self, a: CommuneIdx, b: CommuneIdx) -> Option<f64> {
        self.places.get(a as usize)?.distance_km(self.places.get(b as usize)?)
    }

    /// Number of graph edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Communes matching `query`, best first, the page `offset..offset + limit` and the total.
    ///
    /// Rank: the code INSEE (any case: `2a004`); another code of the commune (postal code,
    /// arrondissement municipal, delegated commune, former code: `29200` → Brest); the name
    /// compared by [`search_key`] (whole, then start, then a word's start, then inside); the
    /// name of a delegated or associated commune or an arrondissement (`Antrain` →
    /// Val-Couesnon), the same way; then names within a small edit distance (`plouguernau`: a
    /// letter missing). A commune appears once, with its best match.
    pub fn search(&self, query: &str, offset: usize, limit: usize) -> SearchPage {
        let q = search_key(query);
        if q.is_empty() {
            return SearchPage { hits: Vec::new(), total: 0 };
        }
        let code = query.trim().to_ascii_uppercase();
        // (tier, edit distance, name length, commune, match)
        let mut best: HashMap<CommuneIdx, (u8, usize, usize, Match)> = HashMap::new();
        let mut offer = |i: CommuneIdx, tier: u8, d: usize, len: usize, m: Match| {
            let e = best.entry(i).or_insert((u8::MAX, 0, 0, Match::Code));
            if (tier, d) < (e.0, e.1) {
                *e = (tier, d, len, m);
            }
        };
        let word = format!(" {q}");
        let by_name = |name: &str| -> Option<u8> {
            if name == q {
                Some(0)
            } else if name.starts_with(&q) {
                Some(1)
            } else if name.contains(&word) {
                Some(2)
            } else if name.contains(&q) {
                Some(3)
            } else {
                None
            }
        };
        if let Ok(c) = InseeCode::parse(&code)
            && let Some(i) = self.idx_of(&c)
        {
            offer(i, 0, 0, 0, Match::Code);
        }
        for &a in self.alias_by_code.get(&code).into_iter().flatten() {
            // A former code (29200 was Ploujean's until 1959, now Morlaix) after a postal code
            // (29200 is Brest's), an arrondissement's or a delegated commune's.
            let tier = if self.aliases[a].kind == AliasKind::FormerCode { 2 } else { 1 };
            offer(self.aliases[a].commune, tier, 0, 0, Match::Alias(a));
        }
        for (i, name) in self.keys.iter().enumerate() {
            let len = self.communes[i].name.len();
            if let Some(r) = by_name(name) {
                offer(i as CommuneIdx, 3 + 2 * r, 0, len, Match::Name);
            } else if let Some(d) = typo_distance(name, &q) {
                offer(i as CommuneIdx, 11, d, len, Match::ApproximateName);
            }
        }
        for (a, name) in self.alias_keys.iter().enumerate() {
            if let Some(r) = by_name(name).filter(|_| !name.is_empty()) {
                offer(self.aliases[a].commune, 4 + 2 * r, 0, self.aliases[a].name.len(), Match::Alias(a));
            }
        }
        let mut hits: Vec<(u8, usize, usize, CommuneIdx, Match)> = best.into_iter().map(|(i, (t, d, l, m))| (t, d, l, i, m)).collect();
        hits.sort_by_key(|h| (h.0, h.1, h.2, h.3));
        let total = hits.len();
        SearchPage { hits: hits.into_iter().skip(offset).take(limit).map(|(_, _, _, idx, matched)| SearchHit { idx, matched }).collect(), total }
    }

    /// How a hit matched, in French for the page and the API (`code postal de Brest`,
    /// `commune déléguée Antrain de Val-Couesnon`, `nom approché`).
    pub fn match_label(&self, hit: &SearchHit) -> String {
        let c = self.commune(hit.idx);
        match &hit.matched {
            Match::Code => "code INSEE".to_string(),
            Match::Name => "nom".to_string(),
            Match::ApproximateName => "nom approché".to_string(),
            Match::Alias(a) => {
                let a = &self.aliases[*a];
                let of = crate::core::fr::de(&c.name);
                match a.kind {
                    AliasKind::PostalCode if !a.name.is_empty() => format!("code postal {} ({}) {of}", a.code, a.name),
                    AliasKind::PostalCode | AliasKind::FormerCode => format!("{} {} {of}", a.kind.fr(), a.code),
                    k => format!("{} {} ({}) {of}", k.fr(), a.name, a.code),
                }
            }
        }
    }
}

/// The form of a name or a query that search compares, so that people find a commune however
/// they type it: Unicode decomposed and accents dropped (`Plouzané` typed in NFD or NFC alike),
/// compatibility forms folded (NFKD: `ﬁ`, full-width letters), invisible format characters
/// (zero-width space, bidirectional marks) dropped, lower case, `œ`/`æ` spelled out, every run of other characters (`-`, spaces, `'`, `’`, `ʼ`)
/// one space, `st`/`ste` read as `saint`/`sainte`, and a leading article (`l`, `le`, `la`,
/// `les`) dropped when a word follows. `"L'Hôpital-Camfrout"` → `"hopital camfrout"`,
/// `"St-Malo"` → `"saint malo"`, `"Mesnil-Rocʼh"` → `"mesnil roc h"`.
pub fn search_key(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut flat = String::with_capacity(s.len());
    // NFKD: compatibility forms too (the ligature `ﬁ`, full-width `Ｂｒｅｓｔ`); invisible
    // format characters (zero-width space, bidirectional marks, BOM) dropped.
    let invisible = |c: &char| matches!(*c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}');
    for c in s.nfkd().filter(|c| !unicode_normalization::char::is_combining_mark(*c) && !invisible(c)).flat_map(char::to_lowercase) {
        match c {
            'œ' => flat.push_str("oe"),
            'æ' => flat.push_str("ae"),
            // A modifier-letter apostrophe (U+02BC) is a letter to Unicode, an apostrophe to a reader.
            '\u{2bc}' => flat.push(' '),
            c if c.is_alphanumeric() => flat.push(c),
            _ => flat.push(' '),
        }
    }
    let mut words: Vec<&str> = flat.split_whitespace().collect();
    if words.len() > 1 && matches!(words[0], "l" | "le" | "la" | "les") {
        words.remove(0);
    }
    words
        .iter()
        .map(|w| match *w {
            "st" => "saint",
            "ste" => "sainte",
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The edit distance (Damerau-Levenshtein, `strsim`) between a name and a query of at least 5
/// characters when it is small enough to be a typo: 1 up to 8 characters, 2 beyond.
fn typo_distance(name: &str, query: &str) -> Option<usize> {
    let n = query.chars().count();
    if n < 5 || name.chars().count().abs_diff(n) > 2 {
        return None;
    }
    let d = strsim::damerau_levenshtein(name, query);
    (d <= if n <= 8 { 1 } else { 2 }).then_some(d)
}

/// Lower-cases and strips the accents of French letters, for name search (`Île` → `ile`).
pub fn fold(s: &str) -> String {
    s.chars()
        .flat_map(|c| c.to_lowercase())
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ÿ' => 'y',
            '’' => '\'',
            c => c,
        })
        .collect::<String>()
        .replace('œ', "oe")
        .replace('æ', "ae")
}

/// Great-circle distance in km between two (lon, lat) points in degrees (haversine, geo crate,
/// mean Earth radius 6,371,008.8 m).
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    Haversine.distance(Point::new(a.0, a.1), Point::new(b.0, b.1)) / 1000.0
}

/// What the hot path reads of a commune ([`Territory::place`]): its centroid, EPCI, department
/// and population class in 32 bytes aligned on 32, so that a record never straddles two cache
/// lines (a wide search reads thousands of them at random; 40 bytes before, half of them over
/// two lines).
#[derive(Clone, Copy, Debug)]
#[repr(align(32))]
struct CommunePlace {
    /// The centroid ([`Commune::centroid`]) as a point of the unit sphere ([`unit_vector`]);
    /// NaN without a centroid ([`CommunePlace::unit`]).
    unit: [f64; 3],
    /// The EPCI: a number per SIREN, `u32::MAX` for none.
    epci: u32,
    /// The department: a number per department code, in order of first appearance.
    department: u16,
    /// The population class ([`Commune::size_class`]).
    size: SizeClass,
}

impl CommunePlace {
    /// The centroid as a point of the unit sphere, `None` without one.
    fn unit(&self) -> Option<[f64; 3]> {
        (!self.unit[0].is_nan()).then_some(self.unit)
    }

    /// Whether the two communes are of the same department.
    fn same_department(&self, other: &CommunePlace) -> bool {
        self.department == other.department
    }

    /// Whether the two communes are members of the same EPCI (`false` when `self` is of none).
    fn same_epci(&self, other: &CommunePlace) -> bool {
        self.epci != u32::MAX && other.epci == self.epci
    }

    /// Distance in km between the two centroids ([`Territory::distance_km`]); `None` when one
    /// has no centroid.
    fn distance_km(&self, other: &CommunePlace) -> Option<f64> {
        let (u, v) = (self.unit()?, other.unit()?);
        // The haversine of the central angle is a quarter of the squared chord between the two
        // points of the unit sphere: the same distance as [`haversine_km`] (within 1e-9 km),
        // with no trigonometry but one `asin` per pair (the kernel's hot path).
        let chord = ((u[0] - v[0]).powi(2) + (u[1] - v[1]).powi(2) + (u[2] - v[2]).powi(2)).sqrt();
        Some(2.0 * EARTH_RADIUS_KM * (chord / 2.0).min(1.0).asin())
    }
}

/// The radius of [`haversine_km`] in km (the GRS80 mean radius, as `geo`'s `Haversine`).
const EARTH_RADIUS_KM: f64 = geo::HaversineMeasure::GRS80_MEAN_RADIUS.radius() / 1000.0;

/// A (longitude, latitude) point in degrees as a point of the unit sphere (x, y, z): computed
/// once per commune, so that [`Territory::distance_km`] needs no trigonometry per pair.
fn unit_vector((lon, lat): (f64, f64)) -> [f64; 3] {
    let (lon, lat) = (lon.to_radians(), lat.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

#[cfg(test)]
mod search_tests {
    use super::*;

    #[test]
    fn search_keys_read_names_as_people_type_them() {
        assert_eq!(search_key("L'Hôpital-Camfrout"), "hopital camfrout");
        assert_eq!(search_key("L'Hopital Camfrout"), "hopital camfrout");
        assert_eq!(search_key("St-Malo"), "saint malo");
        assert_eq!(search_key("saint malo"), "saint malo");
        assert_eq!(search_key("Saint-Thégonnec Loc-Eguiner"), "saint thegonnec loc eguiner");
        assert_eq!(search_key("Plouzan\u{0065}\u{0301}"), "plouzane", "NFD");
        assert_eq!(search_key("Mesnil-Roc\u{02bc}h"), search_key("Mesnil-Roc'h"));
        assert_eq!(search_key("Hœdic"), "hoedic");
        assert_eq!(search_key("Le Relecq-Kerhuon"), "relecq kerhuon");
        assert_eq!(search_key("Le"), "le", "an article alone stays");
        assert_eq!(typo_distance("plouguerneau", "plouguernau"), Some(1));
        assert_eq!(typo_distance("brest", "bret"), None, "under 5 characters, no typo tolerance");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-built territory: a line A-B-C-D plus an island E linked to D by `nearest`;
    /// A, B, C in EPCI 200000001, D in 200000002, E in none.
    pub(crate) fn small() -> Territory {
        let communes = "code,name,department,population,epci_siren,lon,lat,area_km2\n\
            35001,A,35,300,200000001,-1.60,48.10,10\n35002,B,35,1200,200000001,-1.55,48.10,10\n\
            35003,C,35,4000,200000001,-1.50,48.10,10\n35004,D,35,800,200000002,-1.45,48.10,10\n\
            35005,E,35,200,,-1.40,48.00,2\n";
        let epcis = "siren,name,type,population\n200000001,CC Un,CC,5500\n200000002,CC Deux,CC,800\n";
        let members = "epci_siren,code,name,population\n200000001,35001,A,300\n200000001,35002,B,1200\n200000001,35003,C,4000\n200000002,35004,D,800\n200000002,44001,X,900\n";
        let edges =
            "a,b,kind,border_km,distance_km\n35001,35002,border,3.2,3.7\n35002,35003,border,2.0,3.7\n35003,35004,border,1.5,3.7\n35004,35005,nearest,,11.9\n";
        Territory::from_csv(communes, epcis, members, edges, "code_2018,code,via\n", "kind,code,name,commune\npostal_code,35500,,35001\n").unwrap()
    }

    /// The walks kept are made when first asked and give back the walk of the graph exactly, for every Breton commune at
    /// every radius up to the one kept (their first rings), and a larger radius walks the graph:
    /// Rennes has 10 neighbours at one edge, Betton (35024) to Vezin-le-Coquet (35353).
    #[test]
    fn kept_walks_are_the_walks_of_the_graph() {
        let t = crate::seeds::territory().unwrap();
        assert_eq!(t.walks.radius, WALKS_KEPT_TO);
        // Made when first asked: none yet, then one.
        assert_eq!(t.walks.walks.iter().filter(|w| w.get().is_some()).count(), 0);
        let (mut kept, mut walked) = (Vec::new(), Vec::new());
        t.within_hops_into(7, 2, &mut kept);
        assert_eq!(t.walks.walks.iter().filter(|w| w.get().is_some()).count(), 1);
        assert!(t.walks.walks[7].get().is_some());
        let mut entries = 0;
        for a in 0..t.communes().len() as CommuneIdx {
            for r in 0..=WALKS_KEPT_TO + 1 {
                let read = t.walks.read(&t, a, r, &mut kept);
                assert_eq!(read, r <= WALKS_KEPT_TO, "commune {a} radius {r}");
                t.walk_within_hops_into(a, r, &mut walked);
                if read {
                    assert_eq!(kept, walked, "commune {a} radius {r}");
                }
                t.within_hops_into(a, r, &mut kept);
                assert_eq!(kept, walked, "commune {a} radius {r}");
            }
            entries += t.within_hops(a, WALKS_KEPT_TO).len();
        }
        // About a byte a commune of a walk, not four.
        assert!(t.walks.bytes() < entries * 3 / 2, "{} bytes for {entries} communes", t.walks.bytes());
        let rennes = t.find(&InseeCode::parse("35238").unwrap()).unwrap();
        let first: Vec<_> = t.within_hops(rennes, 1).iter().map(|nb| t.commune(nb.idx).code.to_string()).collect();
        assert_eq!(first, ["35024", "35051", "35055", "35189", "35206", "35210", "35240", "35278", "35281", "35353"]);
        assert!(!t.walks.read(&t, t.communes().len() as CommuneIdx, 1, &mut kept));
    }

    /// The walks kept are those of the recommender's first step at its default radius.
    #[test]
    fn the_walks_kept_are_of_the_default_radius() {
        assert_eq!(crate::core::recommend::Params::default().hops, WALKS_KEPT_TO);
    }

    /// `within_hops` is every commune at most `r` edges away with its shortest distance in
    /// edges (petgraph's Dijkstra, unit weights), sorted by hops then code: for every 50th
    /// Breton commune at radii 1 and 6 (read from the walks kept), 15 (walked, packed sort keys)
    /// and 16 (walked, the plain sort).
    #[test]
    fn within_hops_is_the_shortest_paths_sorted_by_hops_then_code() {
        let t = crate::seeds::territory().unwrap();
        let mut compared = 0;
        for a in (0..t.communes().len() as CommuneIdx).step_by(50) {
            let dist = petgraph::algo::dijkstra(&t.graph, NodeIndex::new(a as usize), None, |_| 1u32);
            for r in [1, 6, 15, 16] {
                let mut expected: Vec<(u32, InseeCode)> =
                    dist.iter().filter(|(n, d)| n.index() != a as usize && **d <= r).map(|(n, d)| (*d, t.commune(n.index() as CommuneIdx).code)).collect();
                expected.sort();
                let got: Vec<(u32, InseeCode)> = t.within_hops(a, r).iter().map(|n| (n.hops, t.commune(n.idx).code)).collect();
                assert_eq!(got, expected, "{} at {r}", t.commune(a).code);
                compared += got.len();
            }
        }
        assert!(compared > 10_000, "{compared}");
    }

    #[test]
    fn hops_and_neighbours() {
        let t = small();
        let a = t.find(&InseeCode::parse("35001").unwrap()).unwrap();
        let hops: Vec<_> = t.within_hops(a, 2).iter().map(|n| (t.commune(n.idx).name.to_string(), n.hops)).collect();
        assert_eq!(hops, vec![("B".to_string(), 1), ("C".to_string(), 2)]);
        assert!(t.within_hops(a, 0).is_empty());
        assert_eq!(t.within_hops(a, 10).len(), 4);
        let e = t.find(&InseeCode::parse("35005").unwrap()).unwrap();
        assert!(!t.has_border_neighbour(e));
        assert_eq!(t.neighbours(e)[0].1.kind, EdgeKind::Nearest);
        let epci = t.epci(&Siren::parse("200000002").unwrap()).unwrap();
        assert_eq!(epci.members.len(), 2);
        assert!(!epci.members[0].in_seeds, "44001 is outside the seeds and the largest member");
    }

    #[test]
    fn the_dense_codes_are_the_records_codes() {
        let t = crate::seeds::territory().unwrap();
        let brest = t.find(&InseeCode::parse("29019").unwrap()).unwrap();
        assert_eq!(t.code(brest).as_str(), "29019");
        for (i, c) in t.communes().iter().enumerate() {
            assert_eq!(t.code(i as CommuneIdx), &c.code);
        }
    }

    /// The per-commune arrays the hot path reads (by slot, department, size class, centroid,
    /// EPCI) say what the commune records say, on every pair of the small territory and every
    /// commune of the Breton seeds.
    #[test]
    fn the_dense_facts_are_the_records_facts() {
        let t = small();
        let n = t.communes().len() as CommuneIdx;
        let at = |c: &str| t.idx_of(&InseeCode::parse(c).unwrap()).unwrap();
        assert_eq!((at("35001"), at("35005")), (0, 4));
        assert_eq!(t.idx_of(&InseeCode::parse("35006").unwrap()), None);
        assert_eq!(t.idx_of(&InseeCode::parse("2A004").unwrap()), None);
        assert!(t.same_epci(at("35001"), at("35003")) && !t.same_epci(at("35003"), at("35004")));
        assert!(!t.same_epci(at("35005"), at("35005")), "E is of no EPCI");
        assert_eq!(t.size_class_of(at("35003")), SizeClass::of(4000));
        for a in 0..n {
            for b in 0..n {
                let (ca, cb) = (t.commune(a), t.commune(b));
                assert_eq!(t.same_epci(a, b), ca.epci.is_some() && ca.epci == cb.epci);
                assert_eq!(t.same_department(a, b), ca.department == cb.department);
                let d = t.distance_km(a, b).unwrap();
                assert!((d - haversine_km(ca.centroid.unwrap(), cb.centroid.unwrap())).abs() < 1e-9, "{d}");
            }
        }
        let t = crate::seeds::territory().unwrap();
        let (brest, corsica_free) = (t.find(&InseeCode::parse("29019").unwrap()).unwrap(), t.communes().iter().all(|c| c.code.slot() < 100_000));
        assert!(corsica_free, "the Breton seeds have no Corsican code");
        assert_eq!(t.size_class_of(brest), t.commune(brest).size_class());
        for (i, c) in t.communes().iter().enumerate() {
            assert_eq!(t.idx_of(&c.code), Some(i as CommuneIdx));
            assert_eq!(t.same_department(i as CommuneIdx, brest), c.department == "29");
        }
    }

    /// A commune's place is 32 bytes on a 32-byte boundary (one cache line, never two), and a
    /// commune without a centroid has no distance to any other, either way round.
    #[test]
    fn places_fill_one_cache_line_and_a_commune_without_centroid_has_no_distance() {
        assert_eq!((std::mem::size_of::<CommunePlace>(), std::mem::align_of::<CommunePlace>()), (32, 32));
        let communes = "code,name,department,population,epci_siren,lon,lat,area_km2\n\
            35001,A,35,300,,-1.60,48.10,10\n35002,B,35,1200,,,,\n";
        let t = Territory::from_csv(
            communes,
            "siren,name,type,population\n",
            "epci_siren,code,name,population\n",
            "a,b,kind,border_km,distance_km\n",
            "code_2018,code,via\n",
            "kind,code,name,commune\n",
        )
        .unwrap();
        let at = |c: &str| t.idx_of(&InseeCode::parse(c).unwrap()).unwrap();
        assert_eq!(t.commune(at("35002")).centroid, None);
        assert_eq!(t.distance_km(at("35001"), at("35002")), None);
        assert_eq!(t.distance_km(at("35002"), at("35001")), None);
        assert_eq!(t.distance_km(at("35001"), at("35001")), Some(0.0));
        assert_eq!(t.place(at("35002")).size, SizeClass::of(1200));
    }

    #[test]
    fn haversine_rennes_brest() {
        // Rennes (-1.68, 48.11) to Brest (-4.49, 48.39): about 210 km.
        let d = haversine_km((-1.68, 48.11), (-4.49, 48.39));
        assert!((d - 210.0).abs() < 5.0, "{d}");
    }

    /// The distance between two communes, from their points of the unit sphere, is the
    /// haversine of their centroids (geo's) within 1e-9 km: every 7th Breton commune against
    /// every other, and Rennes-Brest.
    #[test]
    fn commune_distances_are_the_haversine_of_their_centroids() {
        let t = crate::seeds::territory().unwrap();
        let (rennes, brest) = (t.find(&InseeCode::parse("35238").unwrap()).unwrap(), t.find(&InseeCode::parse("29019").unwrap()).unwrap());
        let d = t.distance_km(rennes, brest).unwrap();
        assert!((d - 211.0).abs() < 3.0, "{d}");
        let mut compared = 0;
        for a in (0..t.communes().len() as CommuneIdx).step_by(7) {
            for b in 0..t.communes().len() as CommuneIdx {
                let (Some(p), Some(q)) = (t.commune(a).centroid, t.commune(b).centroid) else { continue };
                let (fast, geo) = (t.distance_km(a, b).unwrap(), haversine_km(p, q));
                assert!((fast - geo).abs() < 1e-9, "{} {}: {fast} against {geo}", t.commune(a).code, t.commune(b).code);
                compared += 1;
            }
        }
        assert!(compared > 100_000, "{compared}");
        assert_eq!(t.distance_km(rennes, rennes), Some(0.0));
    }

    #[test]
    fn folding() {
        assert_eq!(fold("Île-d'Arz"), "ile-d'arz");
        assert_eq!(fold("Hœdic"), "hoedic");
    }
}
