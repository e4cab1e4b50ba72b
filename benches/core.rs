//! In-process benchmarks of the core (criterion): `recommend()` for a few communes and
//! categories, and the pooled purchases of the largest EPCI, on the Brittany seeds with the
//! simulated demo history (seed 2026, until 2026-11-29).
//!
//! Besides criterion's estimates, each case is also timed call by call (2,000 calls after a
//! warm-up; 200 at national scale, where some cases take tens of milliseconds) and its median and p99 printed as `LATENCY name median_us p99_us`, the figures
//! BENCHMARKS.md reports. Run: `cargo bench --bench core` (Brittany), or with the two
//! variables of [`national`] set, the national cases only (`bench/run.sh --synthetic` sets them
//! to the synthetic territory of about 3x France: the same cases, on copy 1 of it).

use std::hint::black_box;
use std::time::Instant;

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use voisinage::core::domain::{InseeCode, Siren, Slug};
use voisinage::core::history::AdoptionIndex;
use voisinage::core::pooling::pooled_purchases;
use voisinage::core::recommend::{Ctx, Params, recommend};
use voisinage::core::simulate::{SimParams, simulate};
use voisinage::seeds;

fn percentiles(name: &str, f: impl FnMut()) {
    percentiles_n(name, 2000, f)
}

fn percentiles_n(name: &str, n: usize, mut f: impl FnMut()) {
    for _ in 0..n.min(50) {
        f();
    }
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!("LATENCY {name} median_us={:.1} p99_us={:.1}", t[t.len() / 2], t[t.len() * 99 / 100]);
}

fn benches(c: &mut Criterion) {
    if std::env::var_os("VOISINAGE_BENCH_NATIONAL_SEEDS").is_some() {
        return; // a national run (see `national`)
    }
    let (territory, catalog) = (seeds::territory().unwrap(), seeds::catalog().unwrap());
    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    let demo = simulate(&territory, &catalog, &SimParams::new(2026, today));
    let mut history = AdoptionIndex::default();
    demo.adoptions.into_iter().for_each(|a| history.add_adoption(a));
    demo.feedback.into_iter().for_each(|f| {
        history.add_feedback(f);
    });
    // As the service does: the feedback sums kept for the date and the default parameters.
    history.keep_feedback_sums(Params::default().sums_basis(today));
    let mut g = c.benchmark_group("brittany");
    // Quimper's postes de travail: the worst case (nothing to propose, widened to the territory).
    let cases = [
        ("rennes/poste-de-travail", "35238", "poste-de-travail"),
        ("brest/etat-civil", "29019", "etat-civil"),
        ("ouessant/site-web", "29155", "site-web"),
        ("quimper/poste-de-travail", "29232", "poste-de-travail"),
    ];
    let data = Data { territory: &territory, catalog: &catalog, history: &history, today, calls: 2000 };
    named_cases(&mut g, "", &data, &cases);
    // The rotation of the HTTP benchmark (bench/reco.lua): 10 communes x 7 categories in turn.
    let communes: Vec<InseeCode> =
        ["35238", "29019", "56260", "22278", "35051", "29232", "56121", "22113", "35288", "29103"].iter().map(|c| InseeCode::parse(c).unwrap()).collect();
    rotation(&mut g, "", &data, &communes);
    let rm = Siren::parse("243500139").unwrap(); // Rennes Métropole, 43 members
    let mut call = || {
        let ctx = Ctx::new(&territory, &catalog, &history, today);
        black_box(pooled_purchases(&ctx, &rm, 24).unwrap());
    };
    g.sample_size(20);
    g.bench_function("pooled-purchases/rennes-metropole", |b| b.iter(&mut call));
    percentiles("pooled-purchases/rennes-metropole", call);
    g.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// What a benchmark reads: one scale's territory, catalogue and history, at a date.
#[derive(Clone, Copy)]
struct Data<'a> {
    territory: &'a voisinage::core::territory::Territory,
    catalog: &'a voisinage::core::catalog::Catalog,
    history: &'a AdoptionIndex,
    today: NaiveDate,
    /// Timed calls per LATENCY line (the SLOWEST search makes `calls / 100`, at least 3, per case).
    calls: usize,
}

/// `recommend()` for each (name, commune, category) case, with a fresh context per call as the
/// HTTP handler builds one per request (criterion and LATENCY).
fn named_cases(g: &mut Group, prefix: &str, d: &Data, cases: &[(&str, &str, &str)]) {
    let Data { territory, catalog, history, today, calls } = *d;
    let params = Params::default();
    for (name, code, category) in cases {
        let (code, category) = (InseeCode::parse(code).unwrap(), Slug::parse(category).unwrap());
        let mut call = || {
            let ctx = Ctx::new(territory, catalog, history, today);
            black_box(recommend(&ctx, &code, &category, &params).unwrap());
        };
        g.bench_function(format!("recommend/{name}"), |b| b.iter(&mut call));
        percentiles_n(&format!("{prefix}recommend/{name}"), calls, call);
    }
}

/// `recommend()` for `communes` x 7 categories in turn (criterion and LATENCY), then the
/// slowest commune per category (SLOWEST, mean of `calls / 100` calls, at least 3: 20 in Brittany).
fn rotation(g: &mut Group, prefix: &str, d: &Data, communes: &[InseeCode]) {
    let Data { territory, catalog, history, today, calls } = *d;
    let params = Params::default();
    let categories: Vec<Slug> =
        ["poste-de-travail", "etat-civil", "elections", "site-web", "finances", "paie-rh", "messagerie"].iter().map(|c| Slug::parse(c).unwrap()).collect();
    let mut n = 0usize;
    let mut call = || {
        n += 1;
        let ctx = Ctx::new(territory, catalog, history, today);
        black_box(recommend(&ctx, &communes[n % communes.len()], &categories[(n / communes.len()) % categories.len()], &params).unwrap());
    };
    g.bench_function("recommend/rotation-70", |b| b.iter(&mut call));
    percentiles_n(&format!("{prefix}recommend/rotation-70"), calls, call);
    let reps = (calls / 100).max(3);
    for cat in &categories {
        let mut worst = (0.0, String::new());
        for code in communes {
            let s = Instant::now();
            for _ in 0..reps {
                let ctx = Ctx::new(territory, catalog, history, today);
                black_box(recommend(&ctx, code, cat, &params).unwrap());
            }
            let us = s.elapsed().as_secs_f64() * 1e6 / reps as f64;
            if us > worst.0 {
                worst = (us, code.to_string());
            }
        }
        println!("SLOWEST {prefix}{cat} {} {:.0}us", worst.1, worst.0);
    }
}

/// National scale, when `VOISINAGE_BENCH_NATIONAL_SEEDS` (seeds folder of `voisinage import
/// --region all`) and `VOISINAGE_BENCH_NATIONAL_STORE` (a data folder where `serve --demo` loaded
/// the national demo history) are set; skipped otherwise (see bench/run.sh --national).
fn national(c: &mut Criterion) {
    let (Some(seeds_dir), Some(store_dir)) = (std::env::var_os("VOISINAGE_BENCH_NATIONAL_SEEDS"), std::env::var_os("VOISINAGE_BENCH_NATIONAL_STORE")) else {
        println!("national benchmarks skipped (VOISINAGE_BENCH_NATIONAL_SEEDS and VOISINAGE_BENCH_NATIONAL_STORE not set)");
        return;
    };
    let territory = seeds::territory_from_dir(std::path::Path::new(&seeds_dir)).unwrap();
    let catalog = seeds::catalog().unwrap();
    let mut history = voisinage::store::Store::open(std::path::Path::new(&store_dir)).unwrap().load_index().unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    history.keep_feedback_sums(Params::default().sums_basis(today));
    println!("national: {} communes, {} adoptions, {} feedback records", territory.communes().len(), history.adoption_count(), history.feedback_count());
    let mut g = c.benchmark_group("national");
    // Paris, Lyon, a rural commune of the Creuse (Aubusson), Rennes; then the searches that
    // widen to the whole territory with candidates to read there (on the demo history of seed
    // 2026): Paris's sauvegarde (one proven candidate, about 2,000 adopters in France) and
    // Aubusson's bureautique (the one candidate rated poorly, about 17,000 adopters).
    let cases = [
        ("paris/poste-de-travail", "75056", "poste-de-travail"),
        ("lyon/etat-civil", "69123", "etat-civil"),
        ("aubusson/site-web", "23008", "site-web"),
        ("rennes/poste-de-travail", "35238", "poste-de-travail"),
        ("paris/sauvegarde", "75056", "sauvegarde"),
        ("aubusson/bureautique", "23008", "bureautique"),
    ];
    // Some national cases take tens of milliseconds (widened to the territory): fewer samples,
    // and 200 timed calls rather than 2,000.
    g.sample_size(10);
    let data = Data { territory: &territory, catalog: &catalog, history: &history, today, calls: 200 };
    named_cases(&mut g, "national/", &data, &cases);
    // The rotation of `bench/run.sh --national` (bench/reco.lua with COMMUNES): 10 communes x
    // 7 categories in turn, and the slowest commune per category.
    let communes: Vec<InseeCode> =
        ["75056", "69123", "13055", "31555", "33063", "23008", "35238", "29232", "67482", "59350"].iter().map(|c| InseeCode::parse(c).unwrap()).collect();
    rotation(&mut g, "national/", &data, &communes);
    // The worst case of issue 17's table: Quimper already runs the newest of everything in use
    // for the poste de travail, so the search widens to the whole territory (28-30 ms at
    // national scale when issue 17 was opened).
    let (quimper, poste) = (InseeCode::parse("29232").unwrap(), Slug::parse("poste-de-travail").unwrap());
    let mut call = || {
        let ctx = Ctx::new(&territory, &catalog, &history, today);
        black_box(recommend(&ctx, &quimper, &poste, &Params::default()).unwrap());
    };
    g.bench_function("recommend/quimper/poste-de-travail", |b| b.iter(&mut call));
    percentiles_n("national/recommend/quimper/poste-de-travail", 200, call);
    // The EPCI with the most member communes in the seeds.
    let largest = territory.epcis().iter().max_by_key(|e| territory.members(&e.siren).len()).unwrap();
    println!("national: largest EPCI {} ({}), {} members", largest.name, largest.siren, territory.members(&largest.siren).len());
    let mut call = || {
        let ctx = Ctx::new(&territory, &catalog, &history, today);
        black_box(pooled_purchases(&ctx, &largest.siren, 24).unwrap());
    };
    g.bench_function("pooled-purchases/largest-epci", |b| b.iter(&mut call));
    percentiles_n("national/pooled-purchases/largest-epci", 200, call);
    g.finish();
}

criterion_group!(core_benches, benches, national);
criterion_main!(core_benches);
