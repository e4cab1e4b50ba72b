//! The national territory (`import --region all`), when `../shared/data` is there (as in CI):
//! every current commune of the 2026 code list is kept, those without a 2018 polygon of their
//! own flagged and linked; Corsica, arrondissements municipaux and postal codes are found.

use std::path::Path;
use std::sync::OnceLock;

use voisinage::core::domain::InseeCode;
use voisinage::core::territory::{EdgeKind, Place, Territory};
use voisinage::import::{self, ImportArea, ImportOptions, ImportReport};

/// The national import, once for the whole file (about 20 s in release): the territory read
/// back from the written seeds, and the report. `None` without the shared data.
fn national() -> Option<&'static (Territory, ImportReport)> {
    static N: OnceLock<Option<(Territory, ImportReport)>> = OnceLock::new();
    N.get_or_init(|| {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        if !from.join("geo/departements").exists() {
            eprintln!("skipped: {} not found (the app itself never needs it)", from.display());
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let opts = ImportOptions::new(from, ImportArea::All, tmp.path().to_path_buf(), None);
        let report = import::run(&opts, &mut |_, _, _| {}).unwrap();
        let t = voisinage::seeds::territory_from_dir(tmp.path()).unwrap();
        Some((t, report))
    })
    .as_ref()
}

fn code(s: &str) -> InseeCode {
    InseeCode::parse(s).unwrap()
}

#[test]
fn every_current_commune_is_kept_and_those_without_a_polygon_are_flagged_and_linked() {
    let Some((t, report)) = national() else { return };
    assert_eq!(t.communes().len(), 34969, "every commune-actuelle of the COG 2026");
    assert_eq!(report.without_polygon.len(), 101);
    // L'Oie and Sainte-Florence, re-created in 2024 out of Essarts-en-Bocage.
    for c in ["85165", "85212"] {
        let i = t.find(&code(c)).unwrap();
        let commune = t.commune(i);
        assert_eq!(commune.place, Place::PartOf { commune: code("85084") }, "{c}");
        assert_eq!(commune.area_km2, None);
        let parent = t.commune(t.find(&code("85084")).unwrap());
        assert_eq!(commune.centroid, parent.centroid, "the centroid of the polygon it was part of");
        let linked: Vec<String> = t.neighbours(i).iter().map(|(j, _)| t.commune(*j).code.to_string()).collect();
        assert!(linked.contains(&"85084".to_string()), "{linked:?}");
        // ...and the neighbours of Essarts-en-Bocage: Chauché (85064) borders it.
        assert!(linked.contains(&"85064".to_string()), "{linked:?}");
        assert!(t.neighbours(i).iter().all(|(_, e)| e.kind == EdgeKind::Derived));
        assert!(report.without_polygon.iter().any(|(k, _, how)| k == c && how.contains("part of 85084")), "{c} in the report");
    }
    // Sannerville shares its postal code with no commune of its EPCI: linked to those of 14940.
    let s = t.commune(t.find(&code("14666")).unwrap());
    assert_eq!(s.place, Place::PostalCode { postal_codes: vec!["14940".to_string()] });
    assert!(s.centroid.is_some());
    // Overseas collectivities: no polygon, nothing to derive a place from; kept, no neighbour.
    let noumea = t.find(&code("98818")).unwrap();
    assert_eq!((t.commune(noumea).place.clone(), t.commune(noumea).centroid), (Place::Unknown, None));
    assert!(t.neighbours(noumea).is_empty());
}

#[test]
fn corsica_arrondissements_and_postal_codes_are_found_nationally() {
    let Some((t, _)) = national() else { return };
    let first = |q: &str| {
        let hit = t.search(q, 0, 5).hits.into_iter().next().unwrap();
        (t.commune(hit.idx).code.to_string(), t.match_label(&hit))
    };
    assert_eq!(first("2a004"), ("2A004".to_string(), "code INSEE".to_string()), "Ajaccio, lower case");
    assert_eq!(t.commune(t.find(&code("2a004")).unwrap()).name.as_ref(), "Ajaccio");
    assert_eq!(first("75101"), ("75056".to_string(), "arrondissement municipal Paris 1er Arrondissement (75101) de Paris".to_string()));
    assert_eq!(first("69381").0, "69123", "Lyon");
    assert_eq!(first("13201").0, "13055", "Marseille");
    assert_eq!(first("75011").1, "code postal 75011 (Paris 11e Arrondissement) de Paris");
    assert_eq!(first("L'Oie").0, "85165");
    // 404 on GET names the city of an arrondissement code.
    let e = t.find(&code("75101")).unwrap_err().to_string();
    assert!(e.contains("arrondissement municipal Paris 1er Arrondissement of 75056 Paris"), "{e}");
    let e = t.find(&code("69381")).unwrap_err().to_string();
    assert!(e.contains("69123 Lyon"), "{e}");
    let e = t.find(&code("13201")).unwrap_err().to_string();
    assert!(e.contains("13055 Marseille"), "{e}");
}
