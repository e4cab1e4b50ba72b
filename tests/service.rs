//! The application service without HTTP: the use cases the API, the CLI and the pages call.

mod common;

use voisinage::Error;
use voisinage::core::auth::{Principal, TokenScope};
use voisinage::core::domain::{InseeCode, Slug};
use voisinage::core::recommend::Params;
use voisinage::service::{AdoptionChanges, AdoptionDraft, FeedbackDraft};
use voisinage::store::Idempotency;

fn code(s: &str) -> InseeCode {
    InseeCode::parse(s).unwrap()
}

fn draft(product: &str, since: &str) -> AdoptionDraft {
    AdoptionDraft {
        product: Slug::parse(product).unwrap(),
        generation: None,
        category: None,
        since: since.parse().unwrap(),
        until: None,
        contract_end: None,
        workstations: None,
    }
}

#[test]
fn writes_check_the_scope_then_reach_the_store_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    // Brest's own token (29019, Brest Métropole 242900314).
    let brest = Principal { token_id: 7, scope: TokenScope::Commune(code("29019")) };
    let e = s.record_adoption(&brest, &code("35238"), draft("openelec", "2019-03-01"), None).unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
    let a = s.record_adoption(&brest, &code("29019"), draft("openelec", "2019-03-01"), None).unwrap();
    assert!(!a.replayed);
    assert_eq!(a.record.category.as_str(), "elections", "the product's main category");
    // The same product and generation in service twice is a conflict.
    assert!(matches!(s.record_adoption(&brest, &code("29019"), draft("openelec", "2020-01-01"), None), Err(Error::Conflict(_))));
    // Seen by readers (the index) and stored (the store).
    let views = s.adoptions_of(None, &code("29019")).unwrap();
    assert_eq!((views.len(), views[0].active, views[0].comments_visible), (1, true, false));
    assert_eq!(s.stored_records().unwrap().0.len(), 1);

    // Feedback, then the end of the adoption.
    let f = FeedbackDraft { date: None, reliability: 4, incidents: 1, downtime_hours: -0.0, support: 5, comment: Some("  ".into()) };
    let f = s.record_feedback(&brest, &code("29019"), a.record.id, f, None).unwrap().record;
    assert_eq!((f.date, f.downtime_hours.to_bits(), f.comment), (common::today(), 0.0f64.to_bits(), None));
    let ended = s
        .amend_adoption(&brest, &code("29019"), a.record.id, AdoptionChanges { until: Some(Some("2024-06-30".parse().unwrap())), ..Default::default() })
        .unwrap();
    assert!(!ended.active && ended.comments_visible);
    assert_eq!(ended.feedback.len(), 1);
    assert_eq!(s.index().adoption(a.record.id).unwrap().until, Some("2024-06-30".parse().unwrap()));
}

#[test]
fn an_idempotent_retry_returns_the_first_record_and_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    let admin = Principal::OPERATOR;
    let key = Idempotency { scope: "POST /x token:0".into(), key: "k1".into(), fingerprint: 42 };
    let first = s.record_adoption(&admin, &code("35238"), draft("spip", "2020-01-01"), Some(&key)).unwrap();
    let again = s.record_adoption(&admin, &code("35238"), draft("spip", "2020-01-01"), Some(&key)).unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.record.id, again.record.id);
    assert_eq!(s.stored_records().unwrap().0.len(), 1);
    assert_eq!(s.stats().adoptions, 1);
}

#[test]
fn tokens_are_managed_by_admins_only_and_never_revoke_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), false);
    let (admin, secret) = s.create_token(&Principal::OPERATOR, TokenScope::Admin, "DSI").unwrap();
    let me = s.authenticate(&secret).unwrap();
    assert_eq!(me, Principal { token_id: admin.id, scope: TokenScope::Admin });
    let commune = Principal { token_id: 9, scope: TokenScope::Commune(code("29019")) };
    assert!(matches!(s.create_token(&commune, TokenScope::Admin, ""), Err(Error::Forbidden(_))));
    assert!(matches!(s.tokens(&commune), Err(Error::Forbidden(_))));
    assert!(matches!(s.create_token(&me, TokenScope::Commune(code("99999")), ""), Err(Error::NotFound(_))));
    assert!(matches!(s.revoke_token(&me, admin.id), Err(Error::Conflict(_))));
    // The operator may revoke any token; a revoked token no longer authenticates.
    s.revoke_token(&Principal::OPERATOR, admin.id).unwrap();
    assert!(matches!(s.authenticate(&secret), Err(Error::Unauthorized(_))));
}

/// The first start with `--demo` builds its index from the simulated records beside the store
/// load instead of reading them back: it is the index a restart reads from the store (every
/// adoption and feedback record, and the same answers).
#[test]
fn the_index_built_beside_the_demo_load_is_the_one_read_back_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let questions = [("35238", "poste-de-travail"), ("29019", "etat-civil"), ("29155", "site-web"), ("56260", "finances")];
    let read = |s: &voisinage::service::Service| {
        let h = s.index();
        let adoptions: Vec<_> = h.adoptions().cloned().collect();
        let feedback: Vec<_> = adoptions.iter().flat_map(|a| h.feedback(a.id).to_vec()).collect();
        drop(h);
        let answers: Vec<Vec<u8>> =
            questions.iter().map(|(c, cat)| s.recommend_json(&code(c), &Slug::parse(cat).unwrap(), &Default::default(), None).unwrap().to_vec()).collect();
        (adoptions, feedback, answers)
    };
    let first = read(&common::open(dir.path(), true));
    let again = read(&common::open(dir.path(), false));
    assert_eq!(first.0.len(), again.0.len());
    assert!(first.0.len() > 10_000 && first.1.len() > 40_000, "{} adoptions, {} feedback records", first.0.len(), first.1.len());
    assert!(first.0 == again.0, "adoptions differ");
    assert!(first.1 == again.1, "feedback differs");
    assert!(first.2 == again.2, "answers differ");
}

/// The answer cache holds at most its budget of bytes whatever the number of distinct
/// questions (each hop_decay below is a question of its own), serves a question asked again
/// from the cache, and counts both; with a budget of 0 it keeps nothing and every answer is
/// computed, the same bytes.
#[test]
fn the_answer_cache_stays_within_its_budget_of_bytes() {
    use voisinage::service::{AnswerCacheStats, Config, DemoRequest, Service};
    let dir = tempfile::tempdir().unwrap();
    let demo = Some(DemoRequest { seed: 2026, until: common::today() });
    let budget = 120_000;
    let s = Service::open(&Config { demo, today: Some(common::today()), answer_cache_bytes: budget, ..Config::new(dir.path()) }).unwrap();
    let ask = |s: &Service, k: u32| {
        let p = Params { hop_decay: 0.5 + f64::from(k) * 1e-9, ..Params::default() };
        s.recommend_json(&code("35238"), &Slug::parse("site-web").unwrap(), &p, None).unwrap()
    };
    let first = ask(&s, 0);
    assert!(first.len() > 5_000, "an answer of {} bytes", first.len());
    for k in 1..60 {
        ask(&s, k);
        let held = s.answer_cache_stats();
        assert!(held.bytes <= budget, "{held:?} after {k} questions");
    }
    let held = s.answer_cache_stats();
    assert!(held.answers >= 2 && held.answers < 60, "{held:?}");
    assert!(held.bytes >= held.answers as u64 * first.len() as u64 / 2, "{held:?}");
    assert_eq!((held.capacity, held.hits, held.misses), (budget, 0, 60));
    // The last question again: from the cache, the very same buffer.
    assert_eq!(ask(&s, 59).as_ptr(), ask(&s, 59).as_ptr());
    assert_eq!(s.answer_cache_stats().hits, 2);
    drop(s);
    let none = Service::open(&Config { today: Some(common::today()), answer_cache_bytes: 0, ..Config::new(dir.path()) }).unwrap();
    let (a, b) = (ask(&none, 0), ask(&none, 0));
    assert_ne!(a.as_ptr(), b.as_ptr());
    assert_eq!(a, b);
    assert_eq!(a, first);
    assert_eq!(none.answer_cache_stats(), AnswerCacheStats { bytes: 0, capacity: 0, answers: 0, hits: 0, misses: 2 });
}

/// The answer cache keys a question by commune, category, date and every parameter's exact
/// value: the same question is answered from the cache with the same bytes, and a question that
/// differs by 1e-12 in one parameter, or by its category or date, gets its own answer.
#[test]
fn cached_answers_are_those_of_the_exact_question() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::open(dir.path(), true);
    let ask = |code_: &str, cat: &str, hop_decay: f64, as_of: Option<&str>| -> serde_json::Value {
        let p = Params { hop_decay, ..Params::default() };
        let as_of = as_of.map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap());
        serde_json::from_slice(&s.recommend_json(&code(code_), &Slug::parse(cat).unwrap(), &p, as_of).unwrap()).unwrap()
    };
    let first = ask("35238", "etat-civil", 0.5, None);
    assert_eq!(ask("35238", "etat-civil", 0.5, None), first);
    // Answered from the cache: the very same buffer.
    let body = |hop_decay: f64| {
        let p = Params { hop_decay, ..Params::default() };
        s.recommend_json(&code("35238"), &Slug::parse("etat-civil").unwrap(), &p, None).unwrap()
    };
    assert_eq!(body(0.5).as_ptr(), body(0.5).as_ptr());
    assert_ne!(body(0.5).as_ptr(), body(0.5 + 1e-12).as_ptr());
    let nudged = ask("35238", "etat-civil", 0.5 + 1e-12, None);
    assert_eq!(nudged["params"]["hop_decay"], 0.500000000001);
    assert_eq!(first["params"]["hop_decay"], 0.5);
    assert_eq!(ask("35238", "finances", 0.5, None)["category"], "finances");
    assert_eq!(ask("29019", "etat-civil", 0.5, None)["commune"], "29019");
    assert_eq!(ask("35238", "etat-civil", 0.5, Some("2024-01-01"))["as_of"], "2024-01-01");
    assert_eq!(ask("35238", "etat-civil", 0.5, None), first);
}

/// Reference data that do not read (here a seeds folder that is not there) give their own
/// error at the start and leave the data folder as it was: a folder without a store gets none,
/// and a store, opened while they were read, is sealed again, so that its next start does not
/// count its records, with every record there.
#[test]
fn reference_data_that_do_not_read_leave_the_store_as_it_was() {
    use voisinage::service::{Config, Service};
    use voisinage::store::{Store, Verdict, ledger, seal};
    let dir = tempfile::tempdir().unwrap();
    let (seeds, data) = (dir.path().join("no-seeds"), dir.path().join("data"));
    let bad = || Config { seeds: Some(seeds.clone()), today: Some(common::today()), ..Config::new(&data) };
    let e = Service::open(&bad()).err().expect("no seeds");
    assert!(matches!(e, Error::Data(_)), "{e:?}");
    assert!(!data.exists(), "no store made");
    let s = common::open(&data, true);
    let (adoptions, feedback) = (s.index().adoption_count(), s.index().feedback_count());
    s.close().unwrap();
    drop(s);
    let e = Service::open(&bad()).err().expect("no seeds");
    assert!(matches!(e, Error::Data(_)), "{e:?}");
    let report = Store::check(&data).unwrap();
    assert_eq!(report.verdict, Verdict::Ok, "{}", report.render());
    // Sealed, and the seal describes the files as they are (taking it removes it).
    assert!(seal::take(&data, &data.join("store"), &ledger::path(&data)).unwrap(), "sealed again");
    let s = common::open(&data, false);
    assert_eq!((s.index().adoption_count(), s.index().feedback_count()), (adoptions, feedback));
}
