//! The synthetic territory of the benchmarks (`examples/synthetic_territory.rs`, issue 17 item
//! 5), run on the embedded Brittany seeds: the result loads with the crate's seeds reader, each
//! copy keeps the source's graph, the copies are stitched into one connected graph, and codes,
//! SIRENs and departments are unique to their copy.

#[allow(dead_code)]
#[path = "../examples/synthetic_territory.rs"]
mod synthetic_territory;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;

use synthetic_territory::{Options, synthesize};
use voisinage::core::domain::InseeCode;
use voisinage::core::territory::Territory;
use voisinage::seeds;

/// The embedded Brittany seeds written to a folder, as `voisinage import` writes them.
fn brittany_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in seeds::SEED_FILES.iter().zip(seeds::SEEDS) {
        std::fs::write(d.path().join(name), text).unwrap();
    }
    std::fs::write(d.path().join("communes.geojson"), seeds::SHAPES).unwrap();
    d
}

/// `synthetic_copies.csv`: code → (copy, source code).
fn mapping(dir: &Path) -> HashMap<String, (usize, String)> {
    let mut r = csv::Reader::from_path(dir.join("synthetic_copies.csv")).unwrap();
    r.records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), (r[1].parse().unwrap(), r[2].to_string()))).collect()
}

/// Number of communes reachable from the first one.
fn reachable(t: &Territory) -> usize {
    let mut seen = vec![false; t.communes().len()];
    let mut q = VecDeque::from([0]);
    seen[0] = true;
    let mut count = 0;
    while let Some(i) = q.pop_front() {
        count += 1;
        for (j, _) in t.neighbours(i) {
            if !std::mem::replace(&mut seen[j as usize], true) {
                q.push_back(j);
            }
        }
    }
    count
}

/// Checks what holds for any result: loads, unique codes and SIRENs, copies' departments and
/// EPCI their own, each copy's commune has its source's neighbours' counterparts in its copy.
/// Returns the territory and the communes per copy.
fn check(src: &Territory, out: &Path) -> (Territory, Vec<usize>) {
    let t = seeds::territory_from_dir(out).unwrap();
    let map = mapping(out);
    assert_eq!(map.len(), t.communes().len());
    let codes: HashSet<&InseeCode> = t.communes().iter().map(|c| &c.code).collect();
    assert_eq!(codes.len(), t.communes().len(), "codes are unique");
    let sirens: HashSet<_> = t.epcis().iter().map(|e| e.siren).collect();
    assert_eq!(sirens.len(), t.epcis().len(), "SIRENs are unique");
    // (copy, source code) → code, to find counterparts.
    let back: HashMap<(usize, &str), &str> = map.iter().map(|(c, (k, s))| ((*k, s.as_str()), c.as_str())).collect();
    let src_deps: HashSet<&str> = src.communes().iter().map(|c| c.department.as_str()).collect();
    let mut per_copy = vec![0; 9];
    for c in t.communes() {
        let (k, s) = &map[c.code.as_str()];
        per_copy[k - 1] += 1;
        let si = src.idx_of(&InseeCode::parse(s).unwrap()).unwrap();
        let sc = src.commune(si);
        assert_eq!(c.population, sc.population);
        if *k == 1 {
            assert_eq!(c.code, sc.code);
            assert_eq!(c.department, sc.department);
        } else {
            assert_eq!(c.department, format!("{}-{k}", sc.department));
            assert!(!src_deps.contains(c.department.as_str()));
            assert_eq!(*c.name, *format!("{} (copie {k})", sc.name));
            // Same latitude, and a distance to any neighbour that is the source's.
            assert_eq!(c.centroid.unwrap().1, sc.centroid.unwrap().1);
            // The copy of its EPCI (none for a commune in none, such as Ouessant).
            assert_eq!(c.epci.is_some(), sc.epci.is_some(), "{}", c.code);
            if let (Some(e), Some(se)) = (c.epci, sc.epci) {
                let epci = t.epci(&e).unwrap();
                assert_eq!(epci.name, format!("{} (copie {k})", src.epci(&se).unwrap().name));
                assert!(epci.siren.as_str().starts_with(&format!("99{k}")));
            }
        }
        // Every source neighbour's counterpart in this copy, when the copy holds it, is a neighbour.
        let i = t.idx_of(&c.code).unwrap();
        let nb: HashMap<&str, f64> = t.neighbours(i).into_iter().map(|(j, e)| (t.commune(j).code.as_str(), e.distance_km)).collect();
        for (sj, e) in src.neighbours(si) {
            if let Some(cj) = back.get(&(*k, src.commune(sj).code.as_str())) {
                assert_eq!(nb.get(cj), Some(&e.distance_km), "{} – {cj} (copy {k} of {} – {})", c.code, sc.code, src.commune(sj).code);
            }
        }
    }
    per_copy.retain(|&n| n > 0);
    (t, per_copy)
}

#[test]
fn three_copies_of_brittany_load_connected_with_unique_codes() {
    let src_dir = brittany_dir();
    let out = tempfile::tempdir().unwrap();
    let s = synthesize(src_dir.path(), out.path(), &Options { copies: 3, max_communes: None }).unwrap();
    let src = seeds::territory().unwrap();
    assert_eq!(src.communes().len(), 1202);
    assert_eq!((s.source_communes, s.communes, s.per_copy.clone()), (1202, 3606, vec![1202, 1202, 1202]));
    assert_eq!(s.free_codes, 102_000 - 1202);
    let (t, per_copy) = check(&src, out.path());
    assert_eq!(t.communes().len(), 3606);
    assert_eq!(per_copy, vec![1202, 1202, 1202]);
    assert_eq!(t.epcis().len(), 3 * src.epcis().len());
    // Each copy's edges, plus the stitches (at least one between each pair of copies).
    assert_eq!(t.edge_count(), 3 * src.edge_count() + s.stitches);
    assert!(s.stitches >= 2, "{} stitches", s.stitches);
    assert_eq!(reachable(&src), 1202, "the source is connected");
    assert_eq!(reachable(&t), 3606, "the copies are stitched into one graph");
    // Shapes: one per source shape and copy, loaded by the reader.
    assert_eq!(seeds::shapes_from_dir(out.path()).unwrap().len(), 3 * seeds::shapes().unwrap().len());
    let readme = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(readme.starts_with("# SYNTHETIC TERRITORY: FOR BENCHMARKS ONLY"));
}

#[test]
fn a_capped_last_copy_is_one_connected_piece_touching_the_previous_copy() {
    let src_dir = brittany_dir();
    let out = tempfile::tempdir().unwrap();
    let s = synthesize(src_dir.path(), out.path(), &Options { copies: 3, max_communes: Some(3000) }).unwrap();
    assert_eq!((s.communes, s.per_copy.clone()), (3000, vec![1202, 1202, 596]));
    let src = seeds::territory().unwrap();
    let (t, per_copy) = check(&src, out.path());
    assert_eq!(per_copy, vec![1202, 1202, 596]);
    assert_eq!(reachable(&t), 3000);
    // The partial copy holds only the EPCI one of its communes belongs to.
    let third: HashSet<_> = t.communes().iter().filter(|c| c.department.ends_with("-3")).filter_map(|c| c.epci).collect();
    assert_eq!(t.epcis().iter().filter(|e| e.siren.as_str().starts_with("993")).count(), third.len());
}

#[test]
fn the_code_space_holds_102000_codes_that_all_parse() {
    let all = synthetic_territory::all_codes();
    assert_eq!(all.len(), 102_000);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 102_000);
    assert!(all.iter().all(|c| InseeCode::parse(c).is_ok()));
    assert!(InseeCode::parse("2C000").is_err() && InseeCode::parse("3A000").is_err());
}
