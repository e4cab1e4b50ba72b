//! Reference data shipped in the binary: the seeds derived by `voisinage import` (Brittany, COG
//! 2026, borders of IGN Admin Express 2018) and the catalogue, so that the service runs from a
//! fresh clone with no other file. A catalogue folder can replace the embedded catalogue.

use std::path::Path;

use crate::core::catalog::{Catalog, CatalogTexts};
use crate::core::territory::Territory;
use crate::error::{Error, Result};

/// The embedded seed CSV files, in the order of [`SEED_FILES`].
pub const SEEDS: [&str; 6] = [
    include_str!("../seeds/communes.csv"),
    include_str!("../seeds/epcis.csv"),
    include_str!("../seeds/epci_members.csv"),
    include_str!("../seeds/edges.csv"),
    include_str!("../seeds/former_communes.csv"),
    include_str!("../seeds/aliases.csv"),
];

/// The embedded simplified commune polygons (GeoJSON).
pub const SHAPES: &str = include_str!("../seeds/communes.geojson");

/// The embedded commune shapes, for maps.
pub fn shapes() -> Result<crate::core::map::Shapes> {
    crate::core::map::Shapes::from_geojson(SHAPES)
}

/// The shapes from a seeds folder (`communes.geojson`), or none when the file is missing.
pub fn shapes_from_dir(dir: &Path) -> Result<crate::core::map::Shapes> {
    let p = dir.join("communes.geojson");
    if p.exists() { crate::core::map::Shapes::from_geojson(&read(&p)?) } else { Ok(crate::core::map::Shapes::default()) }
}

/// The embedded catalogue files, in the order of [`CatalogTexts`].
pub const CATALOG: [&str; 5] = [
    include_str!("../catalog/categories.toml"),
    include_str!("../catalog/products.toml"),
    include_str!("../catalog/generations.toml"),
    include_str!("../catalog/regulations.toml"),
    include_str!("../catalog/procurement.toml"),
];

/// File names of the catalogue, in the order of [`CATALOG`].
pub const CATALOG_FILES: [&str; 5] = ["categories.toml", "products.toml", "generations.toml", "regulations.toml", "procurement.toml"];

/// File names of the seeds, in the order of [`SEEDS`].
pub const SEED_FILES: [&str; 6] = ["communes.csv", "epcis.csv", "epci_members.csv", "edges.csv", "former_communes.csv", "aliases.csv"];

/// The embedded Brittany territory (1,202 communes, 61 EPCI).
pub fn territory() -> Result<Territory> {
    Territory::from_csv(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3], SEEDS[4], SEEDS[5])
}

/// The territory from a seeds folder written by the importer (a folder written before
/// `aliases.csv` existed loads without the other codes and names).
pub fn territory_from_dir(dir: &Path) -> Result<Territory> {
    let t: Vec<String> = SEED_FILES
        .iter()
        .map(|f| if *f == "aliases.csv" && !dir.join(f).exists() { Ok("kind,code,name,commune\n".to_string()) } else { read(&dir.join(f)) })
        .collect::<Result<_>>()?;
    Territory::from_csv(&t[0], &t[1], &t[2], &t[3], &t[4], &t[5])
}

/// The embedded catalogue.
pub fn catalog() -> Result<Catalog> {
    Catalog::from_texts(&CatalogTexts {
        categories: CATALOG[0],
        products: CATALOG[1],
        generations: CATALOG[2],
        regulations: CATALOG[3],
        procurement: CATALOG[4],
    })
}

/// The catalogue from a folder holding the five TOML files.
pub fn catalog_from_dir(dir: &Path) -> Result<Catalog> {
    let t: Vec<String> = CATALOG_FILES.iter().map(|f| read(&dir.join(f))).collect::<Result<_>>()?;
    Catalog::from_texts(&CatalogTexts { categories: &t[0], products: &t[1], generations: &t[2], regulations: &t[3], procurement: &t[4] })
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| Error::Data(format!("{}: {e}", p.display())))
}
