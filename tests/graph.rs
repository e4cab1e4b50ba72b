//! Known facts about the real Brittany graph, checked on the embedded seeds.

use voisinage::core::domain::{InseeCode, Siren};
use voisinage::core::territory::{EdgeKind, Territory};
use voisinage::seeds;

fn code(s: &str) -> InseeCode {
    InseeCode::parse(s).unwrap()
}

fn border_neighbours(t: &Territory, c: &str) -> Vec<String> {
    let i = t.find(&code(c)).unwrap();
    t.neighbours(i).into_iter().filter(|(_, e)| e.kind == EdgeKind::Border).map(|(j, _)| t.commune(j).code.to_string()).collect()
}

#[test]
fn counts() {
    let t = seeds::territory().unwrap();
    assert_eq!(t.communes().len(), 1202);
    assert_eq!(t.epcis().len(), 61);
}

#[test]
fn rennes_has_ten_border_neighbours() {
    let t = seeds::territory().unwrap();
    let n = border_neighbours(&t, "35238");
    assert_eq!(n.len(), 10, "{n:?}");
    assert!(n.contains(&"35051".to_string()), "Cesson-Sévigné");
    assert!(n.contains(&"35278".to_string()), "Saint-Grégoire");
    let rennes = t.find(&code("35238")).unwrap();
    let (_, e) = t.neighbours(rennes).into_iter().find(|(j, _)| t.commune(*j).code == code("35051")).unwrap();
    // Rennes / Cesson-Sévigné: a long border (7.6 km), centroids about 6.4 km apart.
    assert!((7.0..8.0).contains(&e.border_km.unwrap()), "{e:?}");
    assert!((6.0..7.0).contains(&e.distance_km), "{e:?}");
    assert_eq!(t.commune(rennes).epci, Some(Siren::parse("243500139").unwrap()));
}

#[test]
fn islands_touch_nobody_and_get_nearest_links() {
    let t = seeds::territory().unwrap();
    let ouessant = t.find(&code("29155")).unwrap();
    assert!(border_neighbours(&t, "29155").is_empty());
    let near = t.neighbours(ouessant);
    assert!(near.len() >= 2 && near.iter().all(|(_, e)| e.kind == EdgeKind::Nearest), "{near:?}");
    // Its 2 nearest communes by centroid are Île-Molène (29084) and Le Conquet (29040).
    let codes: Vec<String> = near.iter().map(|(j, _)| t.commune(*j).code.to_string()).collect();
    assert!(codes.contains(&"29084".to_string()), "{codes:?}");
    for island in ["29155", "29082", "29083", "29084", "56069", "56085", "56086"] {
        assert!(!t.has_border_neighbour(t.find(&code(island)).unwrap()), "{island}");
    }
}

#[test]
fn islands_without_epci() {
    let t = seeds::territory().unwrap();
    let none: Vec<String> = t.communes().iter().filter(|c| c.epci.is_none()).map(|c| c.code.to_string()).collect();
    assert_eq!(none, vec!["22016", "29083", "29155"], "Île-de-Bréhat, Île-de-Sein, Ouessant");
}

#[test]
fn commune_nouvelle_includes_former_communes() {
    let t = seeds::territory().unwrap();
    let c = t.commune(t.find(&code("56173")).unwrap());
    assert_eq!(c.name, "Pluméliau-Bieuzy");
    assert!(c.former_codes.contains(&code("56016")), "Bieuzy");
    assert!(t.idx_of(&code("56016")).is_none(), "Bieuzy is no longer a commune");
    // The union of Pluméliau and Bieuzy is larger than either (about 87 km²).
    assert!((80.0..95.0).contains(&c.area_km2), "{}", c.area_km2);
}

#[test]
fn hops_grow_the_neighbourhood() {
    let t = seeds::territory().unwrap();
    let r = t.find(&code("35238")).unwrap();
    let one = t.within_hops(r, 1);
    let two = t.within_hops(r, 2);
    assert_eq!(one.len(), 10);
    assert!(two.len() > one.len() && two.iter().all(|n| n.hops <= 2));
    assert!(two.iter().any(|n| t.commune(n.idx).code == code("35024") && n.hops == 1), "Betton");
}

#[test]
fn unicode_names_survive() {
    let t = seeds::territory().unwrap();
    assert_eq!(t.commune(t.find(&code("56085")).unwrap()).name, "Hœdic");
    assert_eq!(t.commune(t.find(&code("56088")).unwrap()).name, "Île-d'Arz");
}

#[test]
fn the_graph_is_connected() {
    let t = seeds::territory().unwrap();
    // Belle-Île, Houat and Hœdic touch only each other: the importer links them to the
    // mainland, so every commune reaches every other one.
    let le_palais = t.find(&code("56114")).unwrap();
    assert_eq!(t.within_hops(le_palais, 1000).len(), 1201);
    let quiberon = t.within_hops(le_palais, 6).into_iter().find(|n| t.commune(n.idx).code == code("56186"));
    assert!(quiberon.is_some(), "Quiberon is within 6 hops of Le Palais, through Houat");
}

#[test]
fn former_codes_point_to_the_commune_nouvelle() {
    let t = seeds::territory().unwrap();
    let e = t.find(&code("56016")).unwrap_err().to_string();
    assert!(e.contains("56173"), "{e}");
}

/// Issue 15, first part: communes found the way people type them (each input is a kind of
/// fault: spaces for hyphens, `St`, a dropped article, NFD accents, U+02BC, a missing letter).
#[test]
fn communes_are_found_however_people_type_them() {
    let t = voisinage::seeds::territory().unwrap();
    let first = |q: &str| t.search(q, 5).first().map(|&i| t.commune(i).code.to_string());
    for (q, code) in [
        ("saint malo", "35288"),
        ("St-Malo", "35288"),
        ("saint thegonnec", "29266"),
        ("L'Hopital Camfrout", "29080"),
        ("Plouzan\u{0065}\u{0301}", "29212"),
        ("Mesnil-Roc\u{02bc}h", "35308"),
        ("plouguernau", "29195"),
        ("29195", "29195"),
    ] {
        assert_eq!(first(q).as_deref(), Some(code), "{q}");
    }
    // A typo is ranked after exact matches: "plouguerneau" itself first, and "brest" finds Brest
    // before any near name.
    assert_eq!(first("brest").as_deref(), Some("29019"));
}
