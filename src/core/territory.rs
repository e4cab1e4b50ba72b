//! Communes, EPCI and the neighbour graph (petgraph), built from the committed seeds.
//!
//! Sources: INSEE COG 2026 (communes, EPCI, populations) and IGN Admin Express COG 2018
//! polygons, derived by `voisinage import` into `seeds/` (see `seeds/README.md`).

use std::collections::{HashMap, VecDeque};

use geo::{Distance, Haversine, Point};
use petgraph::graph::{NodeIndex, UnGraph};
use petgraph::visit::EdgeRef;
use serde::{Deserialize, Serialize};

use crate::core::domain::{InseeCode, Siren, SizeClass};
use crate::error::{Error, Result};

/// Index of a commune in [`Territory::communes`] (and its node index in the graph).
pub type CommuneIdx = u32;

/// A current commune (COG 2026).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Commune {
    /// INSEE code.
    pub code: InseeCode,
    /// Official name, UTF-8 (`Hœdic`, `Île-d'Arz`).
    pub name: String,
    /// Department code (`35`, `2A`).
    pub department: String,
    /// Population municipale (INSEE, COG 2026 vintage).
    pub population: u32,
    /// SIREN of the EPCI the commune belongs to; `None` for the few communes outside any EPCI
    /// (Île-de-Bréhat, Île-de-Sein, Ouessant).
    pub epci: Option<Siren>,
    /// Centroid longitude, WGS84 degrees (planar centroid of the 2018 polygons).
    pub lon: f64,
    /// Centroid latitude, WGS84 degrees.
    pub lat: f64,
    /// Area in km², geodesic, from the 2018 polygons.
    pub area_km2: f64,
    /// 2018 codes of former communes merged into this one (commune nouvelle), sorted.
    pub former_codes: Vec<InseeCode>,
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
#[derive(Clone, Copy, Debug)]
pub struct Neighbour {
    /// The neighbour.
    pub idx: CommuneIdx,
    /// Number of graph edges on the shortest path (1 = direct neighbour).
    pub hops: u32,
}

/// The reference territory: communes, EPCI and their neighbour graph.
#[derive(Debug)]
pub struct Territory {
    communes: Vec<Commune>,
    by_code: HashMap<InseeCode, CommuneIdx>,
    graph: UnGraph<CommuneIdx, Edge>,
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
    lon: f64,
    lat: f64,
    area_km2: f64,
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
    /// `epci_members.csv`, `edges.csv`, `former_communes.csv`, as written by the importer).
    ///
    /// Errors: `Error::Data` when a file does not parse or a row names an unknown commune.
    pub fn from_csv(communes: &str, epcis: &str, members: &str, edges: &str, former: &str) -> Result<Self> {
        let mut t = Territory {
            communes: Vec::new(),
            by_code: HashMap::new(),
            graph: UnGraph::default(),
            epcis: Vec::new(),
            epci_by_siren: HashMap::new(),
            members_in_seeds: HashMap::new(),
        };
        for r in rows::<CommuneRow>("communes.csv", communes)? {
            let code = data(InseeCode::parse(&r.code), "communes.csv")?;
            let epci = if r.epci_siren.is_empty() { None } else { Some(data(Siren::parse(&r.epci_siren), "communes.csv")?) };
            let idx = t.communes.len() as CommuneIdx;
            t.by_code.insert(code, idx);
            t.graph.add_node(idx);
            if let Some(s) = epci {
                t.members_in_seeds.entry(s).or_default().push(idx);
            }
            t.communes.push(Commune {
                code,
                name: r.name,
                department: r.department,
                population: r.population,
                epci,
                lon: r.lon,
                lat: r.lat,
                area_km2: r.area_km2,
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
            let seeded = t.by_code.get(&code).map(|&j| t.communes[j as usize].population);
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
        Ok(t)
    }

    /// All communes, in seed order (sorted by INSEE code).
    pub fn communes(&self) -> &[Commune] {
        &self.communes
    }

    /// The commune at an index. Panics never: indices only come from this territory.
    pub fn commune(&self, idx: CommuneIdx) -> &Commune {
        &self.communes[idx as usize]
    }

    /// Index of a commune by INSEE code; `None` when the code is not a seeded commune.
    pub fn idx_of(&self, code: &InseeCode) -> Option<CommuneIdx> {
        self.by_code.get(code).copied()
    }

    /// A commune by code, or `Error::NotFound` (naming the commune nouvelle when the code is
    /// that of a former commune merged since 2018).
    pub fn find(&self, code: &InseeCode) -> Result<CommuneIdx> {
        self.idx_of(code).ok_or_else(|| match self.communes.iter().find(|c| c.former_codes.contains(code)) {
            Some(c) => Error::NotFound(format!("{code} is a former commune, now part of {} {}", c.code, c.name)),
            None => Error::NotFound(format!("no commune with INSEE code {code} in this territory")),
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
        let mut seen = vec![u32::MAX; self.communes.len()];
        seen[idx as usize] = 0;
        let mut queue = VecDeque::from([idx]);
        let mut out = Vec::new();
        while let Some(n) = queue.pop_front() {
            let h = seen[n as usize];
            if h >= max_hops {
                continue;
            }
            for m in self.graph.neighbors(NodeIndex::new(n as usize)) {
                let m = m.index();
                if seen[m] == u32::MAX {
                    seen[m] = h + 1;
                    out.push(Neighbour { idx: m as CommuneIdx, hops: h + 1 });
                    queue.push_back(m as CommuneIdx);
                }
            }
        }
        out.sort_by(|a, b| a.hops.cmp(&b.hops).then(self.communes[a.idx as usize].code.cmp(&self.communes[b.idx as usize].code)));
        out
    }

    /// Distance in km between the centroids of two communes (haversine, mean Earth radius).
    pub fn distance_km(&self, a: CommuneIdx, b: CommuneIdx) -> f64 {
        let (ca, cb) = (&self.communes[a as usize], &self.communes[b as usize]);
        haversine_km((ca.lon, ca.lat), (cb.lon, cb.lat))
    }

    /// Number of graph edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Communes matching `query`, at most `limit`, best first: the code INSEE (any case:
    /// `2a004`), then names compared by [`search_key`] (whole name, its start, a word's start,
    /// inside), then names within a small edit distance (`plouguernau`: a letter missing).
    pub fn search(&self, query: &str, limit: usize) -> Vec<CommuneIdx> {
        let q = search_key(query);
        let code = query.trim().to_ascii_uppercase();
        if q.is_empty() {
            return Vec::new();
        }
        // Rank: the code, the whole name, the name's start, a word's start, inside the name; then
        // names within a small edit distance (typos), closest first.
        let mut hits: Vec<(u8, usize, usize, CommuneIdx)> = Vec::new();
        for i in 0..self.communes.len() as CommuneIdx {
            let c = &self.communes[i as usize];
            let name = search_key(&c.name);
            let rank = if c.code.as_str() == code {
                Some((0, 0))
            } else if name == q {
                Some((1, 0))
            } else if name.starts_with(&q) {
                Some((2, 0))
            } else if name.contains(&format!(" {q}")) {
                Some((3, 0))
            } else if name.contains(&q) {
                Some((4, 0))
            } else {
                typo_distance(&name, &q).map(|d| (5, d))
            };
            if let Some((r, d)) = rank {
                hits.push((r, d, c.name.len(), i));
            }
        }
        hits.sort();
        hits.into_iter().take(limit).map(|(_, _, _, i)| i).collect()
    }
}

/// The form of a name or a query that search compares, so that people find a commune however
/// they type it: Unicode decomposed and accents dropped (`Plouzané` typed in NFD or NFC alike),
/// lower case, `œ`/`æ` spelled out, every run of other characters (`-`, spaces, `'`, `’`, `ʼ`)
/// one space, `st`/`ste` read as `saint`/`sainte`, and a leading article (`l`, `le`, `la`,
/// `les`) dropped when a word follows. `"L'Hôpital-Camfrout"` → `"hopital camfrout"`,
/// `"St-Malo"` → `"saint malo"`, `"Mesnil-Rocʼh"` → `"mesnil roc h"`.
pub fn search_key(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut flat = String::with_capacity(s.len());
    for c in s.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)).flat_map(char::to_lowercase) {
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
        Territory::from_csv(communes, epcis, members, edges, "code_2018,code,via\n").unwrap()
    }

    #[test]
    fn hops_and_neighbours() {
        let t = small();
        let a = t.find(&InseeCode::parse("35001").unwrap()).unwrap();
        let hops: Vec<_> = t.within_hops(a, 2).iter().map(|n| (t.commune(n.idx).name.clone(), n.hops)).collect();
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
    fn haversine_rennes_brest() {
        // Rennes (-1.68, 48.11) to Brest (-4.49, 48.39): about 210 km.
        let d = haversine_km((-1.68, 48.11), (-4.49, 48.39));
        assert!((d - 210.0).abs() < 5.0, "{d}");
    }

    #[test]
    fn folding() {
        assert_eq!(fold("Île-d'Arz"), "ile-d'arz");
        assert_eq!(fold("Hœdic"), "hoedic");
    }
}
