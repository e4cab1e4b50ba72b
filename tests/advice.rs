//! Advice a mairie can trust: generations as they buy them, advice that agrees with the
//! ranking, the same answer to the same question. Each test builds the situation a user met
//! (issue 12) on an empty store, through the service's use cases, and asserts the right answer.

mod common;

use chrono::NaiveDate;
use serde_json::Value;
use voisinage::core::auth::Principal;
use voisinage::core::domain::{GenerationId, InseeCode, Slug};
use voisinage::core::recommend::{Advice, Answer, Params, Status, recommend};
use voisinage::service::{AdoptionDraft, FeedbackDraft, Service};

fn code(s: &str) -> InseeCode {
    InseeCode::parse(s).unwrap()
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Records that commune `c` runs `product` (generation or release `generation`) from `since`
/// (until `until`), with one report per rating, dated a month apart from `since`.
fn adopt(s: &Service, c: &str, product: &str, generation: Option<&str>, since: &str, until: Option<&str>, ratings: &[u8]) -> u64 {
    let draft = AdoptionDraft {
        product: Slug::parse(product).unwrap(),
        generation: generation.map(|g| GenerationId::parse(g).unwrap()),
        category: None,
        since: d(since),
        until: until.map(d),
        contract_end: None,
        workstations: None,
    };
    let a = s.record_adoption(&Principal::OPERATOR, &code(c), draft, None).unwrap().record;
    for (k, r) in ratings.iter().enumerate() {
        let date = d(since).checked_add_months(chrono::Months::new(k as u32 + 1)).unwrap().min(common::today());
        let f = FeedbackDraft { date: Some(date), reliability: *r, incidents: 0, downtime_hours: 0.0, support: 4, comment: None };
        s.record_feedback(&Principal::OPERATOR, &code(c), a.id, f, None).unwrap();
    }
    a.id
}

fn ask(s: &Service, c: &str, category: &str) -> Answer {
    s.with_ctx(|ctx| recommend(ctx, &code(c), &Slug::parse(category).unwrap(), &Params::default())).unwrap()
}

/// The first `n` border neighbours of a commune, by code.
fn neighbours(s: &Service, c: &str, n: usize) -> Vec<String> {
    let t = s.territory();
    let mut v: Vec<String> = t.neighbours(t.find(&code(c)).unwrap()).into_iter().map(|(j, _)| t.commune(j).code.to_string()).collect();
    v.sort();
    v.truncate(n);
    v
}

#[test]
fn a_windows_10_commune_is_told_to_move_to_windows_11_that_its_neighbours_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    adopt(&s, "35238", "windows", Some("10-22h2"), "2022-11-01", None, &[4]);
    // Neighbours ran Windows 11 for years, on feature updates since replaced or not.
    let n = neighbours(&s, "35238", 3);
    adopt(&s, &n[0], "windows", Some("11-22h2-w"), "2022-11-01", None, &[4, 4]);
    adopt(&s, &n[1], "windows", Some("11-24h2-w"), "2024-11-01", None, &[4]);
    adopt(&s, &n[2], "windows", Some("11"), "2023-01-10", None, &[5]);
    let a = ask(&s, "35238", "poste-de-travail");
    assert_eq!(a.scope.step, voisinage::core::recommend::Step::Neighbours);
    let top = &a.items[0];
    assert_eq!((top.product.as_str(), top.generation.as_ref().map(|g| g.as_str())), ("windows", Some("11")));
    assert_eq!((top.status, top.adopters), (Status::Proven, 3), "the releases of Windows 11 count together");
    assert_eq!(top.release.as_ref().map(|g| g.as_str()), Some("11-26h1-w"));
    let cur = &a.current[0];
    assert_eq!(
        (cur.advice, cur.generation.as_ref().map(|g| g.as_str()), cur.release.as_ref().map(|g| g.as_str())),
        (Advice::Upgrade, Some("10"), Some("10-22h2"))
    );
    assert_eq!(cur.reason, "Passer à Microsoft Windows 11 (Microsoft Windows 10 : fin de support le 14 octobre 2025) : éprouvée à proximité.");
    // The neighbour still on 22H2 (ended 2024-10-08) is told to update in place, not to buy.
    let b = ask(&s, &n[0], "poste-de-travail");
    assert_eq!(b.current[0].advice, Advice::Update);
    assert_eq!(b.current[0].target.as_ref().and_then(|t| t.1.as_ref()).map(|g| g.as_str()), Some("11-26h1-w"));
    assert!(b.current[0].reason.contains("mise à jour sur place, sans achat ni migration"), "{}", b.current[0].reason);
    // A commune on Windows 11 (no release recorded) is told which release to be on.
    let c = ask(&s, &n[2], "poste-de-travail");
    assert_eq!((c.current[0].advice, c.current[0].advised_release.as_ref().map(|g| g.as_str())), (Advice::Stay, Some("11-26h1-w")));
    assert!(c.current[0].reason.ends_with("; version conseillée : Microsoft Windows 11 26H1 (W)."), "{}", c.current[0].reason);
    // Pooled purchases of Rennes Métropole (24 months): Windows 11, still being released, is the
    // proven option for postes de travail, and the neighbours' release updates are not
    // purchases.
    let pp = s.pooled_purchases(&voisinage::core::domain::Siren::parse("243500139").unwrap(), 24, None).unwrap();
    // (The members that declared nothing there need a product too.)
    let g = pp.groupements.iter().find(|g| g.category.as_str() == "poste-de-travail").unwrap();
    let o = g.option.as_ref().expect("a proven option");
    assert_eq!((o.product.as_str(), o.generation.as_ref().map(|g| g.as_str()), o.status), ("windows", Some("11"), Status::Proven));
    // Its adopters are counted as members and neighbours of members, never more members than
    // the EPCI has.
    assert!(o.reason.starts_with("Microsoft Windows 11 : en service dans 3 communes parmi les membres depuis"), "{}", o.reason);
    let rennes = g.concerned.iter().find(|m| m.member.code.as_str() == "35238").unwrap();
    assert!(matches!(rennes.need, voisinage::core::pooling::Need::EndOfSupport { .. }));
    let on: Vec<String> = g.already_on.iter().map(|m| m.code.to_string()).collect();
    assert!(n.iter().all(|c| on.contains(c) && g.concerned.iter().all(|m| &m.member.code.to_string() != c)), "updates are not purchases: {on:?}");
}

#[test]
fn a_newer_release_of_the_same_generation_is_an_update_not_a_purchase() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    adopt(&s, "29266", "windows", Some("11-25h2-w"), "2026-09-01", None, &[4]);
    for c in neighbours(&s, "29266", 2) {
        adopt(&s, &c, "windows", Some("11-26h1-w"), "2026-03-01", None, &[3, 3]);
    }
    let a = ask(&s, "29266", "poste-de-travail");
    // Windows 11 is what it runs: never proposed back, never a switch.
    assert!(a.items.iter().all(|i| i.generation.as_ref().map(|g| g.as_str()) != Some("11")));
    let cur = &a.current[0];
    assert_eq!(cur.advice, Advice::Update, "{}", cur.reason);
    assert_eq!(
        cur.reason,
        "Mettre à jour vers Microsoft Windows 11 26H1 (W) (la version 11 25H2 (W) arrive en fin de support le 12 octobre 2027) : mise à jour sur place, sans achat ni migration."
    );
}

#[test]
fn libreoffice_is_recommendable_and_its_users_are_not_sent_to_office() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    adopt(&s, "22161", "libreoffice", Some("25.8"), "2025-09-01", None, &[4]);
    let n = neighbours(&s, "22161", 3);
    adopt(&s, &n[0], "libreoffice", Some("all"), "2022-01-15", None, &[4, 4]);
    adopt(&s, &n[1], "libreoffice", Some("24.2"), "2024-02-01", None, &[4]);
    adopt(&s, &n[2], "office", Some("2024-ltsc"), "2024-11-01", None, &[5, 5, 5]);
    let a = ask(&s, "22161", "bureautique");
    // Its neighbour asks: LibreOffice is proven (two communes, years), advised on 26.2.
    let b = ask(&s, &n[2], "bureautique");
    let lo = b.items.iter().find(|i| i.product.as_str() == "libreoffice").expect("LibreOffice is recommendable");
    assert_eq!((lo.status, lo.generation.as_ref().map(|g| g.as_str()), lo.release.as_ref().map(|g| g.as_str())), (Status::Proven, Some("all"), Some("26.2")));
    // The three communes on LibreOffice (22161 and two neighbours), on any of its releases.
    assert!(lo.reason.starts_with("LibreOffice : en service dans 3 communes à 8 km au plus depuis 2 ans et 5 mois en moyenne"), "{}", lo.reason);
    // 22161 runs 25.8, ended 2026-06-12: update in place to 26.2, not a switch to Office.
    assert_eq!(a.current[0].advice, Advice::Update, "{}", a.current[0].reason);
    assert_eq!(a.current[0].target.as_ref().map(|t| (t.0.as_str(), t.1.as_ref().map(|g| g.as_str()))), Some(("libreoffice", Some("26.2"))));
}

#[test]
fn an_upgrade_path_within_the_product_comes_before_a_switch() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    // Veeam 12 ends 2027-02-01, within the 12-month margin; Veeam 13 is proven nearby;
    // Proxmox Backup Server 4 is rated higher by one commune.
    adopt(&s, "22001", "veeam-backup-and-replication", Some("12"), "2023-03-01", None, &[4]);
    let n = neighbours(&s, "22001", 3);
    adopt(&s, &n[0], "veeam-backup-and-replication", Some("13"), "2025-09-15", None, &[4, 4]);
    adopt(&s, &n[1], "veeam-backup-and-replication", Some("13"), "2025-10-01", None, &[4]);
    adopt(&s, &n[2], "proxmox-backup-server", Some("4"), "2025-12-01", None, &[5, 5]);
    let a = ask(&s, "22001", "sauvegarde");
    assert_eq!(a.items[0].product.as_str(), "veeam-backup-and-replication");
    let cur = &a.current[0];
    assert_eq!(cur.advice, Advice::Upgrade);
    assert_eq!(cur.target.as_ref().map(|t| (t.0.as_str(), t.1.as_ref().map(|g| g.as_str()))), Some(("veeam-backup-and-replication", Some("13"))));
    assert!(
        cur.reason.starts_with("Passer à Veeam Backup & Replication 13 (Veeam Backup & Replication 12 : fin de support proche, le 2027-02-01)"),
        "{}",
        cur.reason
    );
}

#[test]
fn without_a_successor_the_switch_goes_to_the_first_proven_option() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    // Exchange 2019 ended 2025-10-14 and no commune nearby runs its successor.
    adopt(&s, "29195", "msexchange", Some("2019"), "2019-05-01", None, &[3]);
    let n = neighbours(&s, "29195", 3);
    adopt(&s, &n[0], "roundcube", Some("1.6"), "2022-09-01", None, &[4, 4]);
    adopt(&s, &n[1], "roundcube", Some("1.6"), "2023-01-01", None, &[4]);
    adopt(&s, &n[2], "mattermost", Some("all"), "2026-06-01", None, &[5, 5, 5, 5]);
    let a = ask(&s, "29195", "messagerie");
    assert_eq!((a.items[0].product.as_str(), a.items[0].status), ("roundcube", Status::Proven));
    assert!(a.items.iter().skip_while(|i| i.status == Status::Proven).all(|i| i.status != Status::Proven), "proven first");
    let mm = a.items.iter().find(|i| i.product.as_str() == "mattermost").unwrap();
    assert!(mm.reason.contains("pas encore éprouvée"), "{}", mm.reason);
    let cur = &a.current[0];
    assert_eq!(cur.advice, Advice::Switch);
    assert_eq!(cur.target.as_ref().map(|t| t.0.as_str()), Some("roundcube"));
    assert_eq!(
        cur.reason,
        "Changer pour Roundcube Webmail (Microsoft Exchange 2019 CU15 SU5 : fin de support le 14 octobre 2025 ; aucune génération suivante de Microsoft Exchange en service à proximité) : l'option éprouvée la mieux classée à proximité."
    );
}

#[test]
fn the_search_widens_until_it_finds_a_proven_option_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    let t = s.territory();
    let rennes = t.find(&code("35238")).unwrap();
    let ring = |h: u32| -> Vec<String> { t.within_hops(rennes, 4).into_iter().filter(|n| n.hops == h).map(|n| t.commune(n.idx).code.to_string()).collect() };
    // One neighbour runs Plone 6 for a few months; two communes three edges away ran SPIP for
    // years.
    adopt(&s, &ring(1)[0], "plone", Some("6.1"), "2026-05-01", None, &[5, 5]);
    adopt(&s, &ring(3)[0], "spip", None, "2015-01-01", None, &[4]);
    adopt(&s, &ring(3)[1], "spip", None, "2016-01-01", None, &[4]);
    // A radius of 2 edges (the default, 6, would already reach them).
    let narrow = Params { hops: 2, ..Params::default() };
    let a = s.with_ctx(|ctx| recommend(ctx, &code("35238"), &Slug::parse("site-web").unwrap(), &narrow)).unwrap();
    assert_eq!(a.scope.step, voisinage::core::recommend::Step::WiderNeighbours);
    assert_eq!(a.scope.note.as_deref(), Some("Rien d'éprouvé parmi les voisines proches : recherche élargie aux voisines plus lointaines et à l'EPCI."));
    assert_eq!((a.items[0].product.as_str(), a.items[0].status), ("spip", Status::Proven));
    assert_eq!(a.items[1].product.as_str(), "plone", "ranked after the proven option whatever its score");
    // With hops=4 the first step already finds SPIP.
    let wide = Params { hops: 4, ..Params::default() };
    let b = s.with_ctx(|ctx| recommend(ctx, &code("35238"), &Slug::parse("site-web").unwrap(), &wide)).unwrap();
    assert_eq!(b.scope.step, voisinage::core::recommend::Step::Neighbours);
}

#[test]
fn the_same_question_on_the_same_data_gets_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    adopt(&s, "35238", "windows-server", Some("2016"), "2017-01-01", None, &[3]);
    adopt(&s, "35238", "windows-server", Some("2019"), "2019-06-01", Some("2024-03-01"), &[3]);
    adopt(&s, "35238", "windows-server", Some("2022"), "2024-01-15", None, &[4]);
    for (k, c) in neighbours(&s, "35238", 4).iter().enumerate() {
        adopt(&s, c, "windows-server", Some(["2019", "2022", "2025", "2019"][k]), "2025-01-15", None, &[4]);
        adopt(&s, c, "debian", Some("12"), "2023-07-01", None, &[4]);
    }
    let first = serde_json::to_string(&ask(&s, "35238", "serveur")).unwrap();
    for _ in 0..200 {
        assert_eq!(serde_json::to_string(&ask(&s, "35238", "serveur")).unwrap(), first);
    }
    // No downgrade below the newest generation it runs (2022): 2019 is not proposed.
    let a: Value = serde_json::from_str(&first).unwrap();
    assert!(a["items"].as_array().unwrap().iter().all(|i| !(i["product"] == "windows-server" && i["generation"] == "2019")), "{}", a["items"]);
    // The 2019 server that overlapped with 2022 was upgraded, not abandoned.
    let h = s.index();
    let ended = h.of_commune(&code("35238")).find(|a| a.until.is_some()).unwrap();
    assert!(!h.abandoned_by(ended, common::today()));
}

/// Over every Breton commune and category of the demo history (simulated, seed 2026): proven
/// options first; every unproven option says so; distances in km, never graph hops; advice that
/// agrees with the ranking (an update or an upgrade stays in the product; a switch goes to a
/// proven option of another product ranked above any newer generation of the product in
/// place); the same answer to the same question.
#[test]
fn invariants_over_every_breton_commune_and_category() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), true);
    let (mut answers, mut switches, mut updates) = (0, 0, 0);
    let categories: Vec<Slug> = s.catalog().categories.iter().map(|c| c.slug.clone()).collect();
    let codes: Vec<InseeCode> = s.territory().communes().iter().map(|c| c.code).collect();
    for c in &codes {
        for cat in &categories {
            let a = s.with_ctx(|ctx| recommend(ctx, c, cat, &Params::default())).unwrap();
            answers += 1;
            let unproven_from = a.items.iter().position(|i| i.status != Status::Proven).unwrap_or(a.items.len());
            assert!(a.items[unproven_from..].iter().all(|i| i.status != Status::Proven), "{c} {cat}: proven first");
            for i in &a.items {
                assert!(
                    i.status == Status::Proven
                        || i.reason.contains("pas encore éprouvée")
                        || (i.status == Status::RatedPoorly && i.reason.contains("mal notée : pas retenue comme éprouvée")),
                    "{c} {cat}: {}",
                    i.reason
                );
                assert!(!i.reason.contains("saut"), "{c} {cat}: {}", i.reason);
            }
            for p in &a.current {
                let target = p.target.as_ref();
                match p.advice {
                    Advice::Update | Advice::Upgrade => assert_eq!(target.map(|t| &t.0), Some(&p.product), "{c} {cat}: {}", p.reason),
                    Advice::Stay | Advice::NoProvenOption => assert!(target.is_none(), "{c} {cat}"),
                    Advice::Switch => {
                        switches += 1;
                        let (tp, tg) = target.unwrap();
                        assert_ne!(tp, &p.product);
                        let pos = a.items.iter().position(|i| &i.product == tp && &i.generation == tg).expect("the switch target is in the answer");
                        assert_eq!(a.items[pos].status, Status::Proven, "{c} {cat}: {}", p.reason);
                        assert!(a.items[..pos].iter().all(|i| i.product != p.product), "{c} {cat}: a path in the product ranks above the switch");
                    }
                }
                updates += usize::from(p.advice == Advice::Update);
            }
            let again = s.with_ctx(|ctx| recommend(ctx, c, cat, &Params::default())).unwrap();
            assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&a).unwrap(), "{c} {cat}");
        }
    }
    assert_eq!(answers, 1202 * categories.len());
    // Pooled purchases of every EPCI: a groupement buys for at least two communes; its option
    // is proven, or says it is not yet, or that it is rated poorly.
    let mut groupements = 0;
    for e in s.territory().epcis() {
        let pp = s.pooled_purchases(&e.siren, 24, None).unwrap();
        for g in &pp.groupements {
            groupements += 1;
            assert!(g.concerned.len() >= 2, "{} {}", e.siren, g.category);
            if let Some(o) = &g.option {
                assert!(
                    o.status == Status::Proven
                        || o.reason.contains("pas encore éprouvée")
                        || (o.status == Status::RatedPoorly && o.reason.contains("mal notée : pas retenue comme éprouvée")),
                    "{}",
                    o.reason
                );
                // Never more members named than the EPCI has in the territory.
                let members = s.territory().members(&e.siren).len();
                let count = |before: &str| -> Option<usize> {
                    let i = o.reason.find(before)?;
                    o.reason[..i].split_whitespace().last()?.parse().ok()
                };
                let named = count(" communes parmi les membres").or_else(|| count(" parmi les membres")).unwrap_or(0);
                assert!(named <= members, "{}: {} ({members} members)", e.siren, o.reason);
            }
        }
        assert!(pp.single_needs.iter().all(|g| g.concerned.len() == 1));
    }
    assert!(groupements > 0);
    assert!(switches > 0 && updates == 0, "switches {switches}, updates {updates} (the demo records generations, not releases)");
}

#[test]
fn obligations_ahead_are_flagged_to_check_and_asked_at_a_past_date() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    // Two neighbours of Brest ran a finance product for years; the catalogue does not say
    // which finance products produce the compte financier unique (CFU, 2027-06-30).
    let n = neighbours(&s, "29019", 2);
    adopt(&s, &n[0], "horizon-villages-online", None, "2015-01-01", None, &[4]);
    adopt(&s, &n[1], "horizon-villages-online", None, "2016-01-01", None, &[4]);
    let a = ask(&s, "29019", "finances");
    let item = &a.items[0];
    assert_eq!(item.to_check.iter().map(|c| (c.id.as_str(), c.date.to_string())).collect::<Vec<_>>(), vec![("cfu", "2027-06-30".to_string())]);
    assert!(item.reason.contains("conformité à vérifier : Compte financier unique (CFU)"), "{}", item.reason);
    // The same question on 2023-03-01: the CFU is beyond the 12-month margin, M57 (2024-01-01)
    // within it; on 2024-06-01 neither (M57 in force, CFU too far).
    let at = |date: &str| -> Value {
        let body = s.recommend_json(&code("29019"), &Slug::parse("finances").unwrap(), &Params::default(), Some(d(date))).unwrap();
        serde_json::from_slice(&body).unwrap()
    };
    let before = at("2023-03-01");
    assert_eq!(before["as_of"], "2023-03-01");
    assert_eq!(before["items"][0]["to_check"][0]["id"], "m57");
    assert!(at("2024-06-01")["items"][0].get("to_check").is_none());
    assert!(matches!(
        s.recommend_json(&code("29019"), &Slug::parse("finances").unwrap(), &Params::default(), Some(d("2027-01-01"))),
        Err(voisinage::Error::Invalid(_))
    ));
    // Pooled purchases of Brest Métropole: the option for finances carries the check, over
    // the groupement's horizon.
    let pp = s.pooled_purchases(&voisinage::core::domain::Siren::parse("242900314").unwrap(), 24, None).unwrap();
    let g = pp.groupements.iter().find(|g| g.category.as_str() == "finances").unwrap();
    let o = g.option.as_ref().unwrap();
    assert_eq!(o.to_check[0].id, "cfu");
    assert!(o.reason.ends_with("conformité à vérifier : Compte financier unique (CFU) obligatoire pour les comptes de l'exercice 2026, voté au plus tard le 30 juin 2027 (prérequis : M57 et documents budgétaires télétransmis) (2027-06-30)."), "{}", o.reason);
    // The EPCI sees which members run finance products to check, even without a groupement.
    adopt(&s, "29019", "horizon-villages-online", None, "2017-01-01", None, &[4]);
    let pp = s.pooled_purchases(&voisinage::core::domain::Siren::parse("242900314").unwrap(), 24, None).unwrap();
    let t = pp.to_check.iter().find(|t| t.category.as_str() == "finances" && t.check.id == "cfu").unwrap();
    assert!(t.members.iter().any(|m| m.code.as_str() == "29019"));
    // Not before the obligation is within the horizon.
    let early = s.pooled_purchases(&voisinage::core::domain::Siren::parse("242900314").unwrap(), 12, Some(d("2024-06-01"))).unwrap();
    assert!(early.to_check.iter().all(|t| t.check.id != "cfu"));
}

#[test]
fn a_groupement_does_not_switch_a_member_whose_own_path_stays_in_its_product() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    let siren = voisinage::core::domain::Siren::parse("242900314").unwrap();
    let t = s.territory();
    let m: Vec<String> = t.members(&siren).iter().map(|&i| t.commune(i).code.to_string()).collect();
    // Debian 13 (support until 2028-08-09, within 24 months) on one member; two members on
    // Windows Server 2012 (ended 2023-10-10); two others on 2022 for years.
    adopt(&s, &m[0], "debian", Some("13"), "2025-09-01", None, &[4]);
    adopt(&s, &m[1], "windows-server", Some("2012"), "2013-01-01", None, &[3]);
    adopt(&s, &m[2], "windows-server", Some("2012"), "2014-01-01", None, &[3]);
    adopt(&s, &m[3], "windows-server", Some("2022"), "2022-01-01", None, &[4]);
    adopt(&s, &m[4], "windows-server", Some("2022"), "2022-06-01", None, &[4]);
    // Debian 12 ended (2026-07-11), and Debian 13 runs at m[0]: its path is Debian 13.
    adopt(&s, &m[5], "debian", Some("12"), "2023-07-01", None, &[4]);
    let pp = s.pooled_purchases(&siren, 24, None).unwrap();
    let g = pp.groupements.iter().chain(&pp.single_needs).find(|g| g.category.as_str() == "serveur").unwrap();
    let o = g.option.as_ref().unwrap();
    assert_eq!((o.product.as_str(), o.generation.as_ref().map(|g| g.as_str())), ("windows-server", Some("2022")));
    let codes = |v: &[voisinage::core::pooling::Concerned]| v.iter().map(|c| c.member.code.to_string()).collect::<Vec<_>>();
    assert!(codes(&g.concerned).contains(&m[1]) && codes(&g.concerned).contains(&m[2]));
    let mut own = codes(&g.own_path);
    own.sort();
    let mut want = vec![m[0].clone(), m[5].clone()];
    want.sort();
    assert_eq!(own, want, "Debian is not switched to Windows Server");
    // The commune's own answer agrees: Debian 12 moves to Debian 13.
    let a = ask(&s, &m[5], "serveur");
    assert_eq!((a.current[0].advice, a.current[0].target.as_ref().map(|t| t.0.as_str())), (Advice::Upgrade, Some("debian")));
    assert!(!codes(&g.concerned).contains(&m[0]));
}
