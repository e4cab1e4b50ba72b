//! **SYNTHETIC TERRITORY, FOR BENCHMARKS ONLY.** Writes a seeds folder that replicates a real
//! one (the national seeds of `voisinage import --region all`) several times side by side, so
//! that the benchmarks can show how each figure grows beyond France (issue 17, item 5). Nothing
//! in its output is a real commune: never use it for anything but load and scale measurements.
//!
//! Run: `cargo run --release --example synthetic_territory -- --from SEEDS --out DIR
//! [--copies 3] [--max-communes N]` (`bench/run.sh --synthetic` does it).
//!
//! What it writes (the same files and columns as the importer, see `seeds/README.md`):
//! - copy 1 is the source unchanged (codes, SIRENs, departments, aliases, former codes);
//! - copy `k` ≥ 2 is the source shifted east by `(k - 1) × shift` degrees of longitude
//!   (latitudes unchanged, so every distance inside a copy is the source's: haversine does not
//!   depend on a shift in longitude); `shift` is the widest east-west extent of the source's
//!   metropolitan communes within one 0.1° band of latitude, plus [`GAP_DEG`], so copies never
//!   overlap and touch where the source's east and west borders face each other (islands, the
//!   communes without a border edge, are left out of the borders);
//! - each commune of copy `k` gets a new INSEE code (a code no commune of the source holds:
//!   5 characters, digits or `2A`/`2B` and 3 digits, taken in order), the department
//!   `"{department}-{k}"` (so the department widening of the recommendation stays within a
//!   copy), the name `"{name} (copie k)"`, its EPCI's copy, and the copies of its neighbours as
//!   neighbours (the source's edges, with their border lengths and distances);
//! - each EPCI of copy `k` gets a new SIREN `99kNNNNNN` (NNNNNN: its rank in the source by
//!   SIREN), the name `"{name} (copie k)"` and the copies of its members that are in the source
//!   (members outside the source's seeds are not copied); aliases and former codes are not
//!   copied;
//! - stitches between copies `k - 1` and `k`: in each 0.1° band of latitude, the east-most
//!   metropolitan commune with a border edge of copy `k - 1` and the west-most of copy `k` are linked by a
//!   `nearest` edge when their centroids are at most [`STITCH_KM`] apart (and always the closest
//!   pair), with the haversine distance of the shifted centroids;
//! - `communes.geojson`: the source's shapes, and each copy's shapes shifted likewise (when the
//!   source has the file; without it the reader has no shapes and the maps draw none);
//! - `synthetic_copies.csv` (`code,copy,source_code`, one row per commune) and a `README.md`
//!   saying the folder is synthetic.
//!
//! The code space is the limit: about 102,000 codes exist (100,000 of digits, 2,000 of
//! `2A`/`2B`) and France holds 34,969, so three full copies do not fit. Copies are filled in
//! order until the free codes (or `--max-communes`) run out; the last one is then partial: its
//! communes are taken breadth-first over the source graph from the commune of the closest
//! stitch, so that it is one connected piece touching the previous copy. Free codes that are
//! some source commune's alias or former code (a postal code, an arrondissement) are used last.
//! From the national seeds of 2026-11-30 (34,969 communes) with 3 copies: see
//! `BENCHMARKS.md`, "Synthetic territory (3× France)", for the exact counts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use voisinage::core::territory::haversine_km;

/// Gap added to the widest band, in degrees of longitude, between the east-most commune of a
/// copy and the west-most of the next one in the band where they come closest (0.05° ≈ 3.5 km
/// at 48° N: about the distance between neighbouring centroids).
pub const GAP_DEG: f64 = 0.05;

/// Longest stitch between facing border communes, in km between centroids (besides the closest
/// pair, always stitched).
pub const STITCH_KM: f64 = 30.0;

/// Height of a band of latitude where facing communes are paired, in degrees (≈ 11 km).
pub const BAND_DEG: f64 = 0.1;

/// Options of [`synthesize`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of copies, the source included (1 to 9).
    pub copies: usize,
    /// At most this many communes in the result (the free codes cap it anyway).
    pub max_communes: Option<usize>,
}

/// What [`synthesize`] wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Communes of the source.
    pub source_communes: usize,
    /// Communes per copy (the source first); copies that got no code are not listed.
    pub per_copy: Vec<usize>,
    /// Communes written, all copies.
    pub communes: usize,
    /// EPCI written.
    pub epcis: usize,
    /// Edges written, stitches included.
    pub edges: usize,
    /// Stitch edges between copies.
    pub stitches: usize,
    /// Shift between consecutive copies, degrees of longitude.
    pub shift_deg: f64,
    /// Valid INSEE codes not held by a source commune.
    pub free_codes: usize,
    /// Shapes written to `communes.geojson` (0 without the source file).
    pub shapes: usize,
}

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// A CSV file held as text records, with its header.
struct Table {
    header: csv::StringRecord,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    fn read(path: &Path) -> BoxResult<Table> {
        let mut r = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let header = r.headers()?.clone();
        let rows = r.records().collect::<Result<Vec<_>, _>>().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Table { header, rows })
    }

    /// Position of a column; an error naming the file when it is missing.
    fn col(&self, name: &str, file: &str) -> BoxResult<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| format!("{file}: no column {name}").into())
    }

    fn write(&self, path: &Path, rows: &[csv::StringRecord]) -> BoxResult<()> {
        let mut w = csv::Writer::from_path(path)?;
        w.write_record(&self.header)?;
        for r in rows {
            w.write_record(r)?;
        }
        w.flush()?;
        Ok(())
    }
}

/// Every valid INSEE commune code, in order: `00000` to `99999`, then `2A000` to `2B999`
/// (102,000 codes; see `InseeCode::parse`).
pub fn all_codes() -> Vec<String> {
    let mut v: Vec<String> = (0..100_000).map(|n| format!("{n:05}")).collect();
    for d in ["2A", "2B"] {
        v.extend((0..1000).map(|n| format!("{d}{n:03}")));
    }
    v
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Reads the seeds folder `from` and writes the synthetic territory into `out` (created if
/// needed; its seed files are replaced). Errors: a missing file or column, a row naming an
/// unknown commune, more than 9 copies, a SIREN that would collide.
pub fn synthesize(from: &Path, out: &Path, opts: &Options) -> BoxResult<Summary> {
    if !(1..=9).contains(&opts.copies) {
        return Err("--copies: 1 to 9".into());
    }
    std::fs::create_dir_all(out)?;
    let communes = Table::read(&from.join("communes.csv"))?;
    let epcis = Table::read(&from.join("epcis.csv"))?;
    let members = Table::read(&from.join("epci_members.csv"))?;
    let edges = Table::read(&from.join("edges.csv"))?;
    let (c_code, c_name, c_dep, c_epci, c_lon, c_lat) = (
        communes.col("code", "communes.csv")?,
        communes.col("name", "communes.csv")?,
        communes.col("department", "communes.csv")?,
        communes.col("epci_siren", "communes.csv")?,
        communes.col("lon", "communes.csv")?,
        communes.col("lat", "communes.csv")?,
    );
    let c_linked = communes.col("linked_via", "communes.csv").ok();
    let n = communes.rows.len();
    let index: HashMap<String, usize> = communes.rows.iter().enumerate().map(|(i, r)| (r[c_code].to_string(), i)).collect();
    let centroid: Vec<Option<(f64, f64)>> = communes.rows.iter().map(|r| r[c_lon].parse().ok().zip(r[c_lat].parse().ok())).collect();

    // The source graph.
    let (e_a, e_b) = (edges.col("a", "edges.csv")?, edges.col("b", "edges.csv")?);
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut edge_pairs = Vec::with_capacity(edges.rows.len());
    for r in &edges.rows {
        let a = *index.get(&r[e_a]).ok_or_else(|| format!("edges.csv: unknown commune {}", &r[e_a]))?;
        let b = *index.get(&r[e_b]).ok_or_else(|| format!("edges.csv: unknown commune {}", &r[e_b]))?;
        adj[a].push(b);
        adj[b].push(a);
        edge_pairs.push((a, b));
    }

    // Facing borders: per band of latitude, the east-most and west-most metropolitan communes.
    // Islands (no border edge, linked by `nearest` edges only) are never a copy's border.
    let e_kind = edges.col("kind", "edges.csv")?;
    let mut has_border = vec![false; n];
    for (r, &(a, b)) in edges.rows.iter().zip(&edge_pairs) {
        if &r[e_kind] == "border" {
            (has_border[a], has_border[b]) = (true, true);
        }
    }
    let metro = |i: usize| centroid[i].filter(|_| has_border[i]).filter(|&(lon, lat)| (-6.0..=10.0).contains(&lon) && (41.0..=52.0).contains(&lat));
    let band_of = |lat: f64| (lat / BAND_DEG).floor() as i64;
    // (east-most, west-most) metropolitan commune per band, among `communes` (ties: lowest index).
    let extremes = |communes: &mut dyn Iterator<Item = usize>| {
        let (mut east, mut west): (BTreeMap<i64, usize>, BTreeMap<i64, usize>) = (BTreeMap::new(), BTreeMap::new());
        for i in communes {
            let Some((lon, lat)) = metro(i) else { continue };
            let b = band_of(lat);
            let e = east.entry(b).or_insert(i);
            let (le, ie) = (centroid[*e].unwrap().0, *e);
            if lon > le || (lon == le && i < ie) {
                *e = i;
            }
            let w = west.entry(b).or_insert(i);
            let (lw, iw) = (centroid[*w].unwrap().0, *w);
            if lon < lw || (lon == lw && i < iw) {
                *w = i;
            }
        }
        (east, west)
    };
    let (east, west) = extremes(&mut (0..n));
    let widest = east.iter().filter_map(|(b, &e)| west.get(b).map(|&w| centroid[e].unwrap().0 - centroid[w].unwrap().0)).fold(f64::NAN, f64::max);
    if widest.is_nan() {
        return Err("communes.csv: no metropolitan commune with a centroid: nothing to stitch".into());
    }
    let shift = ((widest + GAP_DEG) * 100.0).ceil() / 100.0;
    let shifted = |i: usize, k: usize| centroid[i].map(|(lon, lat)| (lon + shift * k as f64, lat));
    // Pairs (east-most of a copy, west-most of the next one) per band of latitude, closest first.
    let mut facing: Vec<(f64, usize, usize)> =
        east.iter().filter_map(|(b, &e)| west.get(b).map(|&w| (haversine_km(shifted(e, 0).unwrap(), shifted(w, 1).unwrap()), e, w))).collect();
    facing.sort_by(|x, y| x.0.total_cmp(&y.0));

    // The code space.
    let used: HashSet<&str> = communes.rows.iter().map(|r| &r[c_code]).collect();
    let mut other_codes: HashSet<String> = HashSet::new();
    for (file, col) in [("aliases.csv", "code"), ("former_communes.csv", "code_2018")] {
        if from.join(file).exists() {
            let t = Table::read(&from.join(file))?;
            let c = t.col(col, file)?;
            other_codes.extend(t.rows.iter().map(|r| r[c].to_ascii_uppercase()));
        }
    }
    let (mut free, later): (Vec<String>, Vec<String>) = all_codes().into_iter().filter(|c| !used.contains(c.as_str())).partition(|c| !other_codes.contains(c));
    let free_codes = free.len() + later.len();
    free.extend(later);
    let mut free = free.into_iter();

    // Which source communes each copy holds, and their codes.
    let cap = opts.max_communes.unwrap_or(usize::MAX).saturating_sub(n);
    let mut budget = cap.min(free_codes);
    let mut codes: Vec<HashMap<usize, String>> = vec![(0..n).map(|i| (i, communes.rows[i][c_code].to_string())).collect()];
    for _k in 1..opts.copies {
        if budget == 0 {
            break;
        }
        let kept: Vec<usize> = if budget >= n {
            (0..n).collect()
        } else {
            // Breadth-first from the west end of the closest stitch: one connected piece.
            let mut seen = vec![false; n];
            let mut order = Vec::with_capacity(budget);
            let roots = facing.first().map(|f| f.2).into_iter().chain(0..n);
            for root in roots {
                if order.len() >= budget {
                    break;
                }
                if seen[root] {
                    continue;
                }
                seen[root] = true;
                let mut q = VecDeque::from([root]);
                while let Some(i) = q.pop_front() {
                    if order.len() >= budget {
                        break;
                    }
                    order.push(i);
                    for &j in &adj[i] {
                        if !seen[j] {
                            seen[j] = true;
                            q.push_back(j);
                        }
                    }
                }
            }
            order.sort_unstable();
            order
        };
        budget -= kept.len();
        codes.push(kept.into_iter().map(|i| (i, free.next().expect("budget within the free codes"))).collect());
    }
    let copies = codes.len();

    // EPCI: new SIRENs, checked unique.
    let (p_siren, p_name) = (epcis.col("siren", "epcis.csv")?, epcis.col("name", "epcis.csv")?);
    let p_pop = epcis.col("population", "epcis.csv")?;
    let (m_siren, m_code, m_name, m_pop) = (
        members.col("epci_siren", "epci_members.csv")?,
        members.col("code", "epci_members.csv")?,
        members.col("name", "epci_members.csv")?,
        members.col("population", "epci_members.csv")?,
    );
    let mut epci_rank: Vec<&str> = epcis.rows.iter().map(|r| &r[p_siren]).collect();
    epci_rank.sort_unstable();
    let rank: HashMap<&str, usize> = epci_rank.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let siren_of = |s: &str, k: usize| -> Option<String> {
        if k == 0 || s.is_empty() {
            return Some(s.to_string());
        }
        rank.get(s).map(|r| format!("99{}{r:06}", k + 1))
    };
    let mut sirens: HashSet<String> = epcis.rows.iter().map(|r| r[p_siren].to_string()).collect();

    // communes.csv
    let mut commune_rows: Vec<csv::StringRecord> = Vec::new();
    let mut mapping: Vec<(String, usize, String)> = Vec::new();
    for (k, map) in codes.iter().enumerate() {
        for (&i, code) in map {
            let src = &communes.rows[i];
            mapping.push((code.clone(), k + 1, src[c_code].to_string()));
            if k == 0 {
                commune_rows.push(src.clone());
                continue;
            }
            let mut r: Vec<String> = src.iter().map(str::to_string).collect();
            r[c_code] = code.clone();
            r[c_name] = format!("{} (copie {})", &src[c_name], k + 1);
            r[c_dep] = format!("{}-{}", &src[c_dep], k + 1);
            r[c_epci] = siren_of(&src[c_epci], k).unwrap_or_default();
            if let Some((lon, _)) = shifted(i, k) {
                r[c_lon] = format!("{lon:.5}");
            }
            if let Some(l) = c_linked {
                r[l] = match src[l].split_once(':') {
                    Some(("part_of", c)) => index.get(c).and_then(|j| map.get(j)).map(|c| format!("part_of:{c}")).unwrap_or_default(),
                    _ => src[l].to_string(),
                };
            }
            commune_rows.push(csv::StringRecord::from(r));
        }
    }
    commune_rows.sort_by(|a, b| a[c_code].cmp(&b[c_code]));
    communes.write(&out.join("communes.csv"), &commune_rows)?;

    // epcis.csv and epci_members.csv: the members kept in each copy.
    let member_rows_of: HashMap<&str, Vec<&csv::StringRecord>> = members.rows.iter().fold(HashMap::new(), |mut m, r| {
        m.entry(&r[m_siren]).or_insert_with(Vec::new).push(r);
        m
    });
    let (mut epci_rows, mut member_rows) = (Vec::new(), Vec::new());
    for (k, map) in codes.iter().enumerate() {
        let referenced: HashSet<&str> = map.keys().map(|&i| &communes.rows[i][c_epci]).collect();
        for src in &epcis.rows {
            let siren = siren_of(&src[p_siren], k).ok_or("epcis.csv: an EPCI without a rank")?;
            let listed = member_rows_of.get(&src[p_siren]).map(Vec::as_slice).unwrap_or(&[]);
            let kept: Vec<(String, &csv::StringRecord)> = listed
                .iter()
                .filter_map(|m| match index.get(&m[m_code]) {
                    Some(i) => map.get(i).map(|c| (c.clone(), *m)),
                    None if k == 0 => Some((m[m_code].to_string(), *m)),
                    None => None,
                })
                .collect();
            // A copy's EPCI exists when one of its communes is in that copy.
            if k > 0 && !referenced.contains(&src[p_siren]) {
                continue;
            }
            if k > 0 && !sirens.insert(siren.clone()) {
                return Err(format!("SIREN {siren} would be held twice").into());
            }
            let population: u64 = kept.iter().map(|(_, m)| m[m_pop].parse::<u64>().unwrap_or(0)).sum();
            let mut r: Vec<String> = src.iter().map(str::to_string).collect();
            if k > 0 {
                r[p_siren] = siren.clone();
                r[p_name] = format!("{} (copie {})", &src[p_name], k + 1);
                r[p_pop] = population.to_string();
            }
            epci_rows.push(csv::StringRecord::from(r));
            for (code, m) in kept {
                let mut r: Vec<String> = m.iter().map(str::to_string).collect();
                if k > 0 {
                    r[m_siren] = siren.clone();
                    r[m_code] = code;
                    r[m_name] = format!("{} (copie {})", &m[m_name], k + 1);
                }
                member_rows.push(csv::StringRecord::from(r));
            }
        }
    }
    epci_rows.sort_by(|a, b| a[p_siren].cmp(&b[p_siren]));
    member_rows.sort_by(|a, b| (&a[m_siren], &a[m_code]).cmp(&(&b[m_siren], &b[m_code])));
    epcis.write(&out.join("epcis.csv"), &epci_rows)?;
    members.write(&out.join("epci_members.csv"), &member_rows)?;

    // edges.csv: the source's, each copy's, and the stitches.
    let (e_border, e_dist) = (edges.col("border_km", "edges.csv")?, edges.col("distance_km", "edges.csv")?);
    let mut edge_rows: Vec<csv::StringRecord> = Vec::new();
    for (k, map) in codes.iter().enumerate() {
        for (src, &(a, b)) in edges.rows.iter().zip(&edge_pairs) {
            let (Some(ca), Some(cb)) = (map.get(&a), map.get(&b)) else { continue };
            let (ca, cb) = if ca < cb { (ca, cb) } else { (cb, ca) };
            let mut r: Vec<String> = src.iter().map(str::to_string).collect();
            if k > 0 {
                (r[e_a], r[e_b]) = (ca.clone(), cb.clone());
            }
            edge_rows.push(csv::StringRecord::from(r));
        }
    }
    let mut stitches = 0;
    for k in 1..copies {
        // The east-most commune of each band in copy k - 1 and the west-most in copy k, among the
        // communes each copy holds (the last copy may be partial).
        let (east_prev, _) = extremes(&mut codes[k - 1].keys().copied());
        let (_, west_this) = extremes(&mut codes[k].keys().copied());
        let mut pairs: Vec<(f64, usize, usize)> = east_prev
            .iter()
            .filter_map(|(b, &e)| west_this.get(b).map(|&w| (haversine_km(shifted(e, k - 1).unwrap(), shifted(w, k).unwrap()), e, w)))
            .collect();
        pairs.sort_by(|x, y| x.0.total_cmp(&y.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        let mut done = HashSet::new();
        for (d, e, w) in pairs {
            if (!done.is_empty() && d > STITCH_KM) || !done.insert((e, w)) {
                continue;
            }
            let (a, b) = (codes[k - 1][&e].clone(), codes[k][&w].clone());
            let (a, b) = if a < b { (a, b) } else { (b, a) };
            let mut r = vec![String::new(); edges.header.len()];
            (r[e_a], r[e_b], r[e_kind], r[e_border], r[e_dist]) = (a, b, "nearest".into(), String::new(), format!("{d:.3}"));
            edge_rows.push(csv::StringRecord::from(r));
            stitches += 1;
        }
    }
    edge_rows.sort_by(|a, b| (&a[e_a], &a[e_b]).cmp(&(&b[e_a], &b[e_b])));
    edges.write(&out.join("edges.csv"), &edge_rows)?;

    // aliases.csv and former_communes.csv: the source's only.
    for file in ["aliases.csv", "former_communes.csv"] {
        if from.join(file).exists() {
            std::fs::copy(from.join(file), out.join(file))?;
        }
    }

    // communes.geojson: one feature per line, as the importer writes it.
    let mut shapes = 0;
    if from.join("communes.geojson").exists() {
        let fc: serde_json::Value = serde_json::from_reader(std::io::BufReader::new(File::open(from.join("communes.geojson"))?))?;
        let features = fc["features"].as_array().ok_or("communes.geojson: no features")?;
        let mut w = BufWriter::new(File::create(out.join("communes.geojson"))?);
        w.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")?;
        for (k, map) in codes.iter().enumerate() {
            for f in features {
                let Some(&i) = f["properties"]["code"].as_str().and_then(|c| index.get(c)) else { continue };
                let Some(code) = map.get(&i) else { continue };
                let mut f = f.clone();
                if k > 0 {
                    f["id"] = code.as_str().into();
                    f["properties"]["code"] = code.as_str().into();
                    f["properties"]["name"] = format!("{} (copie {})", &communes.rows[i][c_name], k + 1).into();
                    shift_coordinates(&mut f["geometry"]["coordinates"], shift * k as f64);
                }
                w.write_all(if shapes == 0 { b"".as_slice() } else { b",\n".as_slice() })?;
                serde_json::to_writer(&mut w, &f)?;
                shapes += 1;
            }
        }
        w.write_all(b"\n]}\n")?;
        w.flush()?;
    }

    // The mapping and the notice.
    mapping.sort();
    let mut w = csv::Writer::from_path(out.join("synthetic_copies.csv"))?;
    w.write_record(["code", "copy", "source_code"])?;
    for (code, k, src) in &mapping {
        w.write_record([code.as_str(), &k.to_string(), src.as_str()])?;
    }
    w.flush()?;
    let per_copy: Vec<usize> = codes.iter().map(HashMap::len).collect();
    let summary = Summary {
        source_communes: n,
        communes: commune_rows.len(),
        per_copy,
        epcis: epci_rows.len(),
        edges: edge_rows.len(),
        stitches,
        shift_deg: shift,
        free_codes,
        shapes,
    };
    std::fs::write(out.join("README.md"), readme(from, &summary))?;
    Ok(summary)
}

/// Adds `dx` to the longitude of every position in a GeoJSON coordinates array (any depth).
fn shift_coordinates(v: &mut serde_json::Value, dx: f64) {
    let Some(a) = v.as_array_mut() else { return };
    if a.len() >= 2 && a[0].is_number() {
        if let Some(lon) = a[0].as_f64() {
            a[0] = round6(lon + dx).into();
        }
    } else {
        a.iter_mut().for_each(|x| shift_coordinates(x, dx));
    }
}

fn readme(from: &Path, s: &Summary) -> String {
    format!(
        "# SYNTHETIC TERRITORY: FOR BENCHMARKS ONLY\n\n\
         Written by `cargo run --release --example synthetic_territory` from `{}`: not real communes.\n\
         The source replicated {} times side by side (copy 1 is the source; copy k is shifted {} x (k - 1) degrees\n\
         east, new INSEE codes, departments `DD-k`, SIRENs `99kNNNNNN`, names `... (copie k)`), stitched by\n\
         {} `nearest` edges between facing border communes. Communes per copy: {:?}, {} in all\n\
         (free INSEE codes: {}); {} EPCI, {} edges, {} shapes. `synthetic_copies.csv` maps each code to its\n\
         copy and source commune.\n",
        from.display(),
        s.per_copy.len(),
        s.shift_deg,
        s.stitches,
        s.per_copy,
        s.communes,
        s.free_codes,
        s.epcis,
        s.edges,
        s.shapes
    )
}

/// Command line of the example.
#[derive(clap::Parser)]
#[allow(dead_code)] // tests/synthetic.rs includes this file for `synthesize`, not for `main`.
struct Args {
    /// Seeds folder to replicate (e.g. the national seeds of `voisinage import --region all`).
    #[arg(long)]
    from: PathBuf,
    /// Output folder (created; its seed files are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Number of copies, the source included.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    copies: u8,
    /// At most this many communes in all (the free INSEE codes cap it anyway).
    #[arg(long)]
    max_communes: Option<usize>,
}

#[allow(dead_code)]
fn main() -> BoxResult<()> {
    let a = <Args as clap::Parser>::parse();
    let s = synthesize(&a.from, &a.out, &Options { copies: a.copies.into(), max_communes: a.max_communes })?;
    println!(
        "synthetic territory (benchmarks only) in {}: {} communes ({:?} per copy; {} free codes), {} EPCI, {} edges of which {} stitches, shift {}°, {} shapes",
        a.out.display(),
        s.communes,
        s.per_copy,
        s.free_codes,
        s.epcis,
        s.edges,
        s.stitches,
        s.shift_deg,
        s.shapes
    );
    Ok(())
}
