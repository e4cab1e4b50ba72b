//! The recommender stays ahead of the popularity baseline in the temporal backtest.
//!
//! The recommender's defaults were chosen by looking at seed 2026 (the README's table); this
//! test uses seed 7, which was not looked at when choosing them.

use chrono::NaiveDate;
use voisinage::core::eval::{Method, backtest};
use voisinage::core::history::AdoptionIndex;
use voisinage::core::recommend::Params;
use voisinage::core::simulate::{SimParams, simulate};
use voisinage::seeds;

#[test]
fn recommender_beats_popularity_on_a_held_out_seed() {
    let (t, c) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let demo = simulate(&t, &c, &SimParams::new(7, d("2026-11-29")));
    let mut h = AdoptionIndex::default();
    demo.adoptions.into_iter().for_each(|a| h.add_adoption(a));
    demo.feedback.into_iter().for_each(|f| {
        h.add_feedback(f);
    });
    let rows = backtest(&t, &c, &h, &[d("2018-01-01"), d("2021-01-01")], 24, &Params::default());
    let total = |m: Method| rows.iter().find(|r| r.method == m && r.cut.is_none()).unwrap().clone();
    let (rec, pop, newest) = (total(Method::Recommender), total(Method::GlobalPopularity), total(Method::Newest));
    assert!(rec.cases > 1000, "{}", rec.cases);
    assert_eq!(rec.cases, pop.cases);
    assert!(rec.ndcg_at_3 > pop.ndcg_at_3, "NDCG@3 {} vs {}", rec.ndcg_at_3, pop.ndcg_at_3);
    assert!(rec.hit_at_3 > pop.hit_at_3, "hit@3 {} vs {}", rec.hit_at_3, pop.hit_at_3);
    assert!(rec.hit_at_1 > pop.hit_at_1, "hit@1 {} vs {}", rec.hit_at_1, pop.hit_at_1);
    // Recommending the newest generation runs into teething problems; the recommender does not.
    assert!(rec.poor_share < newest.poor_share / 5.0, "poor {} vs {}", rec.poor_share, newest.poor_share);
    // Metrics are shares.
    for r in &rows {
        for x in [r.hit_at_1, r.hit_at_3, r.ndcg_at_3, r.coverage, r.poor_share] {
            assert!((0.0..=1.0).contains(&x), "{r:?}");
        }
        assert!(r.hit_at_1 <= r.hit_at_3);
    }
}
