//! Exports the data of a run for the PostgreSQL peer of `bench/peer.sh`, and the engine's own
//! answers and timings on a sample of communes, so that the SQL can be checked (same top 3)
//! and timed against the engine on the same data.
//!
//! Writes into `--out`:
//! - `communes.csv`: code, department, population, size class (0-4, see `SizeClass`), EPCI
//!   SIREN, centroid lon/lat (WGS84 degrees, full precision);
//! - `edges.csv`: graph edges, both directions (a, b);
//! - `adoptions.csv`, `feedback.csv`: the history (simulated data);
//! - `products.csv`, `generations.csv`, `regulations.csv`: what the scoring reads of the
//!   catalogue;
//! - `engine.csv`: per sampled (commune, category): the widening step the engine answered at,
//!   its number of items, its top 3 as `product/generation` and the median time of
//!   `recommend()` in µs over 21 calls;
//! - `today.txt`: the reference date.
//!
//! Run: `cargo run --release --example peer_export -- --out DIR [--seeds DIR] [--data-dir DIR]
//! [--today YYYY-MM-DD] [--sample N]`. Without `--data-dir` the demo history is simulated (seed
//! 2026) up to `--today`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use clap::Parser;
use voisinage::core::domain::{InseeCode, SizeClass};
use voisinage::core::history::AdoptionIndex;
use voisinage::core::recommend::{Ctx, Params, Step, recommend};
use voisinage::core::simulate::{SimParams, simulate};
use voisinage::seeds;
use voisinage::store::Store;

#[derive(Parser)]
struct Args {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Seeds folder (default: the embedded Brittany seeds).
    #[arg(long)]
    seeds: Option<PathBuf>,
    /// Store to read the history from (default: simulate it).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Reference date.
    #[arg(long, default_value = "2026-11-29")]
    today: NaiveDate,
    /// Number of (commune, category) pairs sampled.
    #[arg(long, default_value_t = 60)]
    sample: usize,
}

fn size_code(s: SizeClass) -> u8 {
    match s {
        SizeClass::Under500 => 0,
        SizeClass::From500To1999 => 1,
        SizeClass::From2000To3499 => 2,
        SizeClass::From3500To9999 => 3,
        SizeClass::Over10000 => 4,
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let territory = match &args.seeds {
        Some(d) => seeds::territory_from_dir(d)?,
        None => seeds::territory()?,
    };
    let catalog = seeds::catalog()?;
    let history = match &args.data_dir {
        Some(d) => Store::open(d)?.load_index()?,
        None => {
            let demo = simulate(&territory, &catalog, &SimParams::new(2026, args.today));
            let mut h = AdoptionIndex::default();
            demo.adoptions.into_iter().for_each(|a| h.add_adoption(a));
            demo.feedback.into_iter().for_each(|f| {
                h.add_feedback(f);
            });
            h
        }
    };
    std::fs::write(args.out.join("today.txt"), format!("{}\n", args.today))?;
    let file = |name: &str| -> std::io::Result<std::io::BufWriter<std::fs::File>> { Ok(std::io::BufWriter::new(std::fs::File::create(args.out.join(name))?)) };

    let mut w = file("communes.csv")?;
    writeln!(w, "code,department,population,size_class,epci,lon,lat")?;
    for c in territory.communes() {
        // A commune with no place (an overseas collectivity) has no centroid: empty (NULL), and
        // no edge, so the peer never measures a distance to it.
        let (lon, lat) = c.centroid.map_or((String::new(), String::new()), |(x, y)| (format!("{x:?}"), format!("{y:?}")));
        writeln!(w, "{},{},{},{},{},{lon},{lat}", c.code, c.department, c.population, size_code(c.size_class()), opt(&c.epci))?;
    }
    let mut w = file("edges.csv")?;
    writeln!(w, "a,b")?;
    for (i, c) in territory.communes().iter().enumerate() {
        for (j, _) in territory.neighbours(i as u32) {
            writeln!(w, "{},{}", c.code, territory.commune(j).code)?;
        }
    }
    let mut w = file("adoptions.csv")?;
    writeln!(w, "id,commune,category,product,generation,since,until")?;
    for a in history.adoptions() {
        writeln!(w, "{},{},{},{},{},{},{}", a.id, a.commune, a.category, a.product, opt(&a.generation), a.since, opt(&a.until))?;
    }
    let mut w = file("feedback.csv")?;
    writeln!(w, "id,adoption_id,date,reliability,incidents,downtime_hours")?;
    for a in history.adoptions() {
        for f in history.feedback(a.id) {
            writeln!(w, "{},{},{},{},{},{:?}", f.id, f.adoption_id, f.date, f.reliability, f.incidents, f.downtime_hours)?;
        }
    }
    let mut w = file("products.csv")?;
    writeln!(w, "product,category")?;
    for p in &catalog.products {
        for c in &p.categories {
            writeln!(w, "{},{}", p.id, c)?;
        }
    }
    let mut w = file("generations.csv")?;
    writeln!(w, "product,generation,ord,released,end_of_support,eol_undated,phase_out")?;
    for p in &catalog.products {
        for g in &p.generations {
            let quoted = format!("\"{}\"", g.id.as_str().replace('"', "\"\""));
            writeln!(w, "{},{},{},{},{},{},{}", p.id, quoted, g.order, opt(&g.released), opt(&g.end_of_support), g.eol_undated, g.phase_out.is_some())?;
        }
    }
    let mut w = file("regulations.csv")?;
    writeln!(w, "category,min_population,max_population,date")?;
    for r in &catalog.regulations {
        for c in &r.categories {
            writeln!(w, "{},{},{},{}", c, opt(&r.min_population), opt(&r.max_population), r.date)?;
        }
    }
    drop(w);

    // The sample: communes spread evenly over the territory, categories in turn.
    let params = Params::default();
    let n = territory.communes().len();
    let mut w = file("engine.csv")?;
    writeln!(w, "code,category,step,items,top3,median_us")?;
    let categories: Vec<_> = catalog.categories.iter().map(|c| c.slug.clone()).collect();
    for k in 0..args.sample {
        let code: InseeCode = territory.communes()[(k * 7919) % n].code;
        let category = &categories[k % categories.len()];
        let ctx = Ctx::new(&territory, &catalog, &history, args.today);
        let answer = recommend(&ctx, &code, category, &params)?;
        let mut times: Vec<f64> = (0..21)
            .map(|_| {
                let s = Instant::now();
                // A fresh context per call, as the HTTP handler builds one per request.
                let ctx = Ctx::new(&territory, &catalog, &history, args.today);
                std::hint::black_box(recommend(&ctx, &code, category, &params).ok());
                s.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let top3: Vec<String> = answer.items.iter().take(3).map(|i| format!("{}/{}", i.product, opt(&i.generation))).collect();
        let step = match answer.scope.step {
            Step::Neighbours => "neighbours",
            Step::WiderNeighbours => "wider_neighbours",
            Step::Department => "department",
            Step::SizeClass => "size_class",
            Step::Territory => "territory",
        };
        writeln!(w, "{code},{category},{step},{},\"{}\",{:.1}", answer.items.len(), top3.join(";"), times[10])?;
    }
    eprintln!("{} communes, {} adoptions, {} feedback records written to {}", n, history.adoption_count(), history.feedback_count(), args.out.display());
    Ok(())
}
