//! Re-runs the importer on the shared open data (when `../shared/data` is there, as in CI) and
//! checks that it reproduces the committed seeds (the CSV files, the map shapes and the report)
//! and catalogue generations byte for byte.

use std::path::{Path, PathBuf};

use voisinage::import::{self, ImportArea, ImportOptions};
use voisinage::seeds::SEED_FILES;

#[test]
fn import_reproduces_committed_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let from = root.join("../shared/data");
    if !from.join("cog/communes.json").exists() {
        eprintln!("skipped: {} not found (the app itself never needs it)", from.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seeds_out = tmp.path().join("seeds");
    let catalog = tmp.path().join("catalog");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::copy(root.join("catalog/products.toml"), catalog.join("products.toml")).unwrap();
    let opts = ImportOptions::new(from, ImportArea::Region("53".into()), seeds_out.clone(), Some(catalog.clone()));
    let report = import::run(&opts, &mut |_, _, _| {}).unwrap();
    assert_eq!(report.communes, 1202);
    assert_eq!(report.epcis, 61);
    assert!(report.unmapped.is_empty(), "{:?}", report.unmapped);
    assert_eq!(report.mapped_anciens_codes, 2, "56016 and 56138 map only through anciensCodes");
    assert_eq!(report.mapped_chef_lieu, 28);
    assert_eq!(report.isolated.len(), 10);
    let files: Vec<(PathBuf, PathBuf)> = SEED_FILES
        .iter()
        .chain(["IMPORT_REPORT.md", "communes.geojson"].iter())
        .map(|f| (seeds_out.join(f), root.join("seeds").join(f)))
        .chain([(catalog.join("generations.toml"), root.join("catalog/generations.toml"))])
        .collect();
    for (new, committed) in files {
        let a = std::fs::read_to_string(&new).unwrap();
        let b = std::fs::read_to_string(&committed).unwrap();
        assert!(a == b, "{} differs from a fresh import: re-run `voisinage import` and commit", committed.display());
    }
}
