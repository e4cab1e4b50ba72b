//! The map shapes (`communes.geojson`, written by the importer, read by the maps and the GeoJSON
//! export) open right in QGIS and validators, at both scales: every geometry is valid (OGC simple
//! features, geo's `Validation`), outer rings are counter-clockwise and holes clockwise (RFC
//! 7946 §3.1.6), every feature has its INSEE code as `id`, and simplifying keeps each commune's
//! area close to its true area (`communes.csv`, computed on the unsimplified polygons).
//!
//! Brittany: the embedded seeds. France: a fresh import of every department into a temporary
//! folder, when `../shared/data` is there (as in CI); skipped with a message otherwise (about
//! 25 s in a debug build). On the national shapes it also draws the SVG map of an EPCI with a
//! commune too small to see, which gets a marker.

use std::collections::BTreeMap;
use std::path::Path;

use geo::orient::{Direction, Orient};
use geo::{GeodesicArea, MultiPolygon, Validation, Winding};
use voisinage::core::domain::InseeCode;
use voisinage::core::map::{MAP_MARGIN_PX, MARKER_RADIUS_PX, MapItem, MapStatus, Shapes, svg};
use voisinage::import::{self, ImportArea, ImportOptions, MAP_SIMPLIFY_STEPS};

/// Checks every feature of a `communes.geojson` text: `id` equal to `properties.code`, a valid
/// MultiPolygon, outer rings counter-clockwise and holes clockwise. Returns the shapes by code.
fn checked_shapes(text: &str) -> BTreeMap<String, MultiPolygon> {
    let fc: geojson::FeatureCollection = text.parse().unwrap();
    let mut out = BTreeMap::new();
    let mut faults = Vec::new();
    for f in fc.features {
        let code = f.property("code").and_then(|v| v.as_str()).unwrap().to_string();
        assert_eq!(f.id, Some(geojson::feature::Id::String(code.clone())), "feature id of {code}");
        let g: geo::Geometry = (&f.geometry.as_ref().unwrap().value).try_into().unwrap();
        let geo::Geometry::MultiPolygon(mp) = g else { panic!("{code}: not a MultiPolygon") };
        assert!(!mp.0.is_empty(), "{code}: no polygon");
        for p in &mp.0 {
            if !p.exterior().is_ccw() || !p.interiors().iter().all(|h| h.is_cw()) {
                faults.push(format!("{code}: winding"));
            }
        }
        let errors = mp.validation_errors();
        if !errors.is_empty() {
            faults.push(format!("{code}: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")));
        }
        out.insert(code, mp);
    }
    assert!(faults.is_empty(), "{} faulty shapes: {faults:?}", faults.len());
    out
}

/// `communes.csv`: code → area in km² (geodesic, of the unsimplified polygons).
fn areas(csv_text: &str) -> BTreeMap<String, f64> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    // A commune without a polygon of its own has no area (and no map shape).
    r.records().map(Result::unwrap).filter(|r| !r[7].is_empty()).map(|r| (r[0].to_string(), r[7].parse().unwrap())).collect()
}

/// The communes whose map shape's area differs from their true area by more than `rel` of it and
/// more than `abs_km2`: (code, true km², map km²).
fn area_outliers(shapes: &BTreeMap<String, MultiPolygon>, areas: &BTreeMap<String, f64>, rel: f64, abs_km2: f64) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    for (code, shape) in shapes {
        let truth = areas[code];
        let map = shape.orient(Direction::Default).geodesic_area_unsigned() / 1e6;
        if (map - truth).abs() > rel * truth && (map - truth).abs() > abs_km2 {
            out.push((code.clone(), truth, map));
        }
    }
    out
}

#[test]
fn brittany_shapes_are_valid_counter_clockwise_and_have_an_id() {
    let shapes = checked_shapes(voisinage::seeds::SHAPES);
    assert_eq!(shapes.len(), 1202);
    // Self-intersecting after the default simplification before issue 15, kept valid by a finer
    // step now (see IMPORT_REPORT.md): Crozon, Tréglonou, Le Verger.
    for code in ["29042", "29290", "35351"] {
        assert!(shapes[code].is_valid(), "{code}");
    }
    assert_eq!(shapes["35351"].0[0].exterior().0.len(), 70, "Le Verger unsimplified, at 5 decimals");
    let outliers = area_outliers(&shapes, &areas(voisinage::seeds::SEEDS[0]), 0.05, 0.05);
    assert!(outliers.is_empty(), "{outliers:?}");
}

#[test]
fn national_shapes_are_valid_counter_clockwise_and_have_an_id() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let from = root.join("../shared/data");
    if !from.join("geo/departements").exists() {
        eprintln!("skipped: {} not found (the app itself never needs it)", from.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let opts = ImportOptions::new(from, ImportArea::All, tmp.path().to_path_buf(), None);
    let report = import::run(&opts, &mut |_, _, _| {}).unwrap();
    eprintln!("national import: {:.1} s", started.elapsed().as_secs_f64());
    // Every current commune of the 2026 code list (34,969); 101 have no 2018 polygon of their
    // own (tests/national.rs), so no map shape.
    assert_eq!(report.communes, 34969);
    let text = std::fs::read_to_string(tmp.path().join("communes.geojson")).unwrap();
    let shapes = checked_shapes(&text);
    assert_eq!(shapes.len(), 34868);
    for code in ["29042", "29290", "35351", "14174"] {
        assert!(shapes[code].is_valid(), "{code}");
    }
    // Condé-en-Normandie: its 2018 ring passes twice through (-0.56932, 48.89639), which is
    // invalid already in the source; repaired first.
    let repaired: Vec<&str> = report.repaired_shapes.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(repaired, ["14174"]);
    // 25 communes need a finer step than the default to stay valid, among them the Breton three.
    let finer: BTreeMap<&str, (f64, usize)> = report.simplified_less.iter().map(|r| (r.0.as_str(), (r.2, r.3))).collect();
    assert_eq!(finer.len(), 25);
    assert_eq!((finer["29042"], finer["29290"], finer["35351"]), ((0.00025, 4), (0.00025, 4), (0.0, 5)));
    assert!(finer.values().all(|s| MAP_SIMPLIFY_STEPS[1..].contains(s)));
    let csv = std::fs::read_to_string(tmp.path().join("communes.csv")).unwrap();
    let outliers = area_outliers(&shapes, &areas(&csv), 0.05, 0.05);
    assert!(outliers.is_empty(), "{outliers:?}");

    // The map of the CC Rurales de l'Entre-Deux-Mers (200069599, 49 members): Castelmoron-d'Albret
    // (33103, 0.016 km²) is a triangle of a few px at this scale, drawn with a marker 10 px
    // across on top of its neighbours.
    let shapes = Shapes::from_geojson(&text).unwrap();
    let members = std::fs::read_to_string(tmp.path().join("epci_members.csv")).unwrap();
    let items: Vec<MapItem> = members
        .lines()
        .filter_map(|l| l.strip_prefix("200069599,"))
        .map(|l| MapItem { code: InseeCode::parse(&l[..5]).unwrap(), name: "x", status: MapStatus::Nothing, detail: String::new(), labelled: false })
        .collect();
    let map = svg(&shapes, &items, "200069599", 720.0);
    let markers: Vec<&str> = map.split("<circle class=\"repere\" data-code=\"").skip(1).map(|r| &r[..5]).collect();
    assert_eq!(markers, ["33103"]);
    assert!(map.contains("<circle class=\"repere\" data-code=\"33103\" cx=\"437.7\" cy=\"217.4\" r=\"5\""));
    assert_eq!((MARKER_RADIUS_PX, MAP_MARGIN_PX), (5.0, 8.0));
    // 720 px wide, the shapes 704 px across between two 8-px margins.
    assert!(map.contains("viewBox=\"0 0 720 386\""));
}
