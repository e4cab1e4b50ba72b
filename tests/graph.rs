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
    assert_eq!(&*c.name, "Pluméliau-Bieuzy");
    assert!(c.former_codes.contains(&code("56016")), "Bieuzy");
    assert!(t.idx_of(&code("56016")).is_none(), "Bieuzy is no longer a commune");
    // The union of Pluméliau and Bieuzy is larger than either (about 87 km²).
    let area = c.area_km2.unwrap();
    assert!((80.0..95.0).contains(&area), "{area}");
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
    assert_eq!(t.commune(t.find(&code("56085")).unwrap()).name.as_ref(), "Hœdic");
    assert_eq!(t.commune(t.find(&code("56088")).unwrap()).name.as_ref(), "Île-d'Arz");
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
    let first = |q: &str| t.search(q, 0, 5).hits.first().map(|h| t.commune(h.idx).code.to_string());
    for (q, code) in [
        ("saint malo", "35288"),
        ("St-Malo", "35288"),
        ("saint thegonnec", "29266"),
        ("L'Hopital Camfrout", "29080"),
        ("Plouzan\u{0065}\u{0301}", "29212"),
        ("Mesnil-Roc\u{02bc}h", "35308"),
        ("plouguernau", "29195"),
        ("29195", "29195"),
        // Found by the bad-input session: invisible characters dropped (not read as a typo),
        // compatibility forms folded (NFKD).
        ("Br\u{200b}est", "29019"),
        ("\u{ff22}\u{ff52}\u{ff45}\u{ff53}\u{ff54}", "29019"),
    ] {
        assert_eq!(first(q).as_deref(), Some(code), "{q}");
    }
    // A typo is ranked after exact matches: "plouguerneau" itself first, and "brest" finds Brest
    // before any near name.
    assert_eq!(first("brest").as_deref(), Some("29019"));
}

/// Issue 15: other codes and names find the current commune, and the hit says how it matched:
/// postal codes (29200 is Brest's; INSEE 56100 is Langonnet while postal 56100 is Lorient),
/// former codes, communes déléguées by name and code.
#[test]
fn postal_codes_former_codes_and_delegated_communes_find_the_current_commune() {
    let t = voisinage::seeds::territory().unwrap();
    let hits = |q: &str| -> Vec<(String, String)> { t.search(q, 0, 10).hits.iter().map(|h| (t.commune(h.idx).code.to_string(), t.match_label(h))).collect() };
    // 29200 is Brest's postal code, and the INSEE code Ploujean had until it merged into Morlaix
    // (1959, COG `anciensCodes`): the postal code first.
    assert_eq!(
        hits("29200"),
        vec![("29019".to_string(), "code postal 29200 de Brest".to_string()), ("29151".to_string(), "ancien code 29200 de Morlaix".to_string())]
    );
    let langonnet_then_lorient = hits("56100");
    assert_eq!(langonnet_then_lorient[0], ("56100".to_string(), "code INSEE".to_string()), "the INSEE code first");
    assert_eq!(langonnet_then_lorient[1], ("56121".to_string(), "code postal 56100 de Lorient".to_string()));
    assert_eq!(hits("22027"), vec![("22241".to_string(), "commune déléguée Le Cambout (22027) de Plumieux".to_string())]);
    assert_eq!(hits("Antrain")[0], ("35004".to_string(), "commune déléguée Antrain (35004) de Val-Couesnon".to_string()));
    assert_eq!(hits("lanhelin")[0], ("35308".to_string(), "commune déléguée Lanhélin (35147) de Mesnil-Roc'h".to_string()));
    assert_eq!(hits("56016")[0].0, "56173", "a former code with no delegated commune");
    assert!(hits("56016")[0].1.starts_with("ancien code 56016 de "), "{:?}", hits("56016"));
    // A commune appears once, with its best match: Brest by name, not again by a postal code.
    let brest = t.search("brest", 0, 100);
    assert_eq!(brest.hits.iter().filter(|h| t.commune(h.idx).code.as_str() == "29019").count(), 1);
}

/// Issue 15: `GET` of a postal code or a delegated commune's code says which commune the user
/// probably meant.
#[test]
fn a_code_that_is_no_commune_says_which_commune_was_meant() {
    let t = voisinage::seeds::territory().unwrap();
    let e = t.find(&code("29200")).unwrap_err().to_string();
    assert_eq!(e, "29200 is not the INSEE code of a current commune; as a postal code it serves 29019 Brest; it is a former code of 29151 Morlaix");
    let e = t.find(&code("22027")).unwrap_err().to_string();
    assert!(e.contains("delegated commune (commune déléguée) Le Cambout of 22241 Plumieux"), "{e}");
    // Five communes share the postal code 35460: said once, every commune named.
    let e = t.find(&code("35460")).unwrap_err().to_string();
    assert_eq!(e.matches("as a postal code it serves").count(), 1, "{e}");
    assert!(e.contains("35004 Val-Couesnon"), "{e}");
    let e = t.find(&code("29999")).unwrap_err().to_string();
    assert_eq!(e, "no commune with INSEE code 29999 in this territory");
}

/// Issue 15: search results are paginated with a total (`q=saint` stopped at 100 with no total).
#[test]
fn search_pages_add_up_to_the_total() {
    let t = voisinage::seeds::territory().unwrap();
    let all = t.search("saint", 0, usize::MAX);
    assert!(all.total > 100, "{}", all.total);
    assert_eq!(all.hits.len(), all.total);
    let mut paged = Vec::new();
    for offset in (0..all.total).step_by(40) {
        let p = t.search("saint", offset, 40);
        assert_eq!(p.total, all.total);
        paged.extend(p.hits);
    }
    assert_eq!(paged, all.hits, "pages in order, none lost or repeated");
    assert!(t.search("saint", all.total, 20).hits.is_empty());
}
