//! The `voisinage` command: `serve` runs the HTTP service, `token` manages bearer tokens,
//! `import` derives the seeds from the shared open data, `eval` backtests the recommender,
//! `check` reports the store's integrity and `accept-loss` accepts a damaged store's losses;
//! `migrate` brings a store of an older format to the current one.
//! `backup` and `restore` save the store to a verified file and rebuild one from it.
//! Each command builds what it needs through [`Service::open`] (serve, token) or the core
//! (import, eval).

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use voisinage::core::auth::{Principal, TokenScope};
use voisinage::core::eval::{self, EvalSettings};
use voisinage::core::recommend::Params;
use voisinage::core::simulate::SimParams;
use voisinage::http::{HttpConfig, serve};
use voisinage::import::{self, ImportArea, ImportOptions};
use voisinage::progress::{Progress, Steps};
use voisinage::service::{self, Config, DemoRequest, Service};
use voisinage::store::{Store, Verdict};
use voisinage::{Error, backup, seeds};

/// Recommends to French communes what their neighbours already run, and proposes groupements
/// de commandes to their EPCI.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as `text` (for a terminal) or `json` (one object a line, for a log collector;
    /// each request's lines carry its `request_id` under `span`).
    #[arg(long, value_enum, default_value = "text", env = "VOISINAGE_LOG_FORMAT", global = true)]
    log_format: LogFormat,
}

/// The form of the log lines on standard error.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP service on the embedded reference data (or on --seeds / --catalog).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "VOISINAGE_BIND")]
        bind: String,
        /// Folder of the durable store (created if missing).
        #[arg(long, default_value = "./data", env = "VOISINAGE_DATA_DIR")]
        data_dir: PathBuf,
        /// On an empty store, load a simulated adoption and feedback history (labelled
        /// `simulated: true` everywhere).
        #[arg(long)]
        demo: bool,
        /// Seed of the simulated history.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Last day of the simulated history (default: today).
        #[arg(long)]
        demo_until: Option<NaiveDate>,
        /// Use this seeds folder instead of the embedded Brittany seeds.
        #[arg(long)]
        seeds: Option<PathBuf>,
        /// Use this catalogue folder instead of the embedded catalogue.
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// An origin allowed to call the API from a browser (CORS), `https://host[:port]`
        /// (repeatable; the variable takes them comma-separated). None: no CORS headers.
        #[arg(long = "cors-origin", value_name = "URL", env = "VOISINAGE_CORS_ORIGINS", value_delimiter = ',', value_parser = HttpConfig::origin)]
        cors_origins: Vec<String>,
        /// A reverse proxy's IP address whose `X-Forwarded-For` gives the client's address
        /// (repeatable; the variable takes them comma-separated).
        #[arg(long = "trusted-proxy", value_name = "IP", env = "VOISINAGE_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxies: Vec<IpAddr>,
        /// Memory for recommendation answers already computed, in MiB (0: none): an answer is
        /// served again until the next write or the next day; past this budget, an answer asked
        /// only once mostly leaves before one asked again.
        #[arg(long, value_name = "MIB", default_value_t = 32, env = "VOISINAGE_ANSWER_CACHE_MIB", value_parser = clap::value_parser!(u64).range(0..=65_536))]
        answer_cache_mib: u64,
    },
    /// Decision-quality evaluation of the recommender against baselines on simulated histories
    /// (realised utility and regret of the generation each method proposes; README, "Measured
    /// quality").
    Eval {
        /// Seeds of the simulated histories: `6-15`, `7` or `1,3,5`. Defaults were tuned on 1-5;
        /// report on 6-15.
        #[arg(long, default_value = "6-15")]
        seeds: String,
        /// Last day of the simulated histories.
        #[arg(long, default_value = "2026-11-29")]
        until: NaiveDate,
        /// Cut dates, comma-separated (each needs 36 months of reports after it).
        #[arg(long, value_delimiter = ',', default_value = "2015-01-01,2017-01-01,2019-01-01,2021-01-01,2023-01-01")]
        cuts: Vec<NaiveDate>,
        /// Override a recommender parameter, `name=value` (repeatable), e.g. `--set hops=3`.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        overrides: Vec<String>,
        /// Override a simulation parameter, `name=value` (repeatable), e.g. `--sim
        /// neighbour_help=0`.
        #[arg(long = "sim", value_name = "NAME=VALUE")]
        sim: Vec<String>,
        /// Skip the ablation (the run with neighbours' help and local support switched off).
        #[arg(long)]
        no_ablation: bool,
        /// Print one JSON document instead of Markdown tables.
        #[arg(long)]
        json: bool,
    },
    /// Creates, lists or revokes the bearer tokens that writes need (run while the service is
    /// stopped: the store is locked by a running service, which offers the same under
    /// /api/v1/tokens to an admin token).
    Token {
        #[command(subcommand)]
        action: TokenAction,
        /// Folder of the durable store.
        #[arg(long, default_value = "./data", env = "VOISINAGE_DATA_DIR", global = true)]
        data_dir: PathBuf,
        /// Seeds folder the service runs on (to check the scope's commune or EPCI exists);
        /// default: the embedded Brittany seeds.
        #[arg(long, global = true)]
        seeds: Option<PathBuf>,
    },
    /// Asks a running service whether it is ready (`GET /health/ready`): exit status 0 when it
    /// answers 200 within the timeout, 1 otherwise (for Docker's HEALTHCHECK and scripts).
    Health {
        /// URL to ask; default: /health/ready on the address of VOISINAGE_BIND (0.0.0.0 and
        /// [::] asked on the loopback), else 127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Reports the store's integrity without changing it: the records held against those its
    /// ledger acknowledged (on a copy of the store, made in TMPDIR). Exit status 0 when ok, 1
    /// otherwise. Refused while the service runs on the folder.
    Check {
        /// Folder of the durable store.
        #[arg(long, default_value = "./data", env = "VOISINAGE_DATA_DIR")]
        data_dir: PathBuf,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Accepts, knowingly, that a damaged store lost acknowledged records (when no backup holds
    /// them): rewrites its ledger to what it holds and keeps lost ids from being given again.
    /// Run with the service stopped; `check` first.
    AcceptLoss {
        /// Folder of the durable store.
        #[arg(long, default_value = "./data", env = "VOISINAGE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Migrates a stopped store of an older format to the current one (JSON values to the
    /// compact binary form), after writing a backup into DATA_DIR/backups/; the service and the
    /// other commands do the same when they open such a store. Says what was done.
    Migrate {
        /// Folder of the durable store.
        #[arg(long, default_value = "./data", env = "VOISINAGE_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Saves a backup of the store to a file (gzip JSON Lines, `voisinage::backup`): through the
    /// running service's admin API (--url), or from a stopped store (--data-dir). The file is
    /// written as FILE.partial, checked, synced, then renamed to FILE; the counts are printed.
    Backup {
        /// Where to save the backup (e.g. /backups/voisinage-2026-11-29.jsonl.gz).
        #[arg(long)]
        to: PathBuf,
        /// The folder of a store not in use (the service stopped).
        #[arg(long, required_unless_present = "url", conflicts_with = "url")]
        data_dir: Option<PathBuf>,
        /// The running service, `http://HOST:PORT` (POST /api/v1/admin/backups).
        #[arg(long)]
        url: Option<String>,
        /// A file holding an admin token's secret, for --url (default: env VOISINAGE_TOKEN).
        #[arg(long, requires = "url")]
        token_file: Option<PathBuf>,
    },
    /// Rebuilds a store in a new folder from a backup file, after checking the whole file
    /// (refuses a damaged, truncated or newer one, and a folder that is not empty).
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The new data folder (must not exist, or be empty).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Derives seeds/ (communes, EPCI, neighbour edges) and catalog/generations.toml from the
    /// shared open data.
    Import {
        /// The shared data folder (holding cog/, geo/, lifecycle/).
        #[arg(long, default_value = "../shared/data")]
        from: PathBuf,
        /// INSEE region code (53 = Bretagne) or `all`.
        #[arg(long, default_value = "53")]
        region: String,
        /// Where to write the seeds.
        #[arg(long, default_value = "seeds")]
        out: PathBuf,
        /// Catalogue folder: products.toml is read, generations.toml written.
        #[arg(long, default_value = "catalog")]
        catalog: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Creates a token and prints its secret once (only its SHA-256 is stored).
    Create {
        /// `commune:{INSEE code}`, `epci:{SIREN}` or `admin`.
        #[arg(long)]
        scope: String,
        /// Who holds it (e.g. "secrétariat de mairie").
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Lists the tokens (id, scope, label, dates; never secrets).
    List,
    /// Revokes a token by id, at once and for good.
    Revoke {
        /// The token's id, as listed.
        id: u64,
    },
}

fn main() {
    use std::io::IsTerminal;
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).with_env_filter(filter).init(),
        // One JSON object a line: the event's fields at the top level, the current span's
        // fields (the request id) under `span`.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
    }
    let result = match cli.command {
        Command::Serve { bind, data_dir, demo, seed, demo_until, seeds, catalog, cors_origins, trusted_proxies, answer_cache_mib } => {
            let demo = demo.then(|| DemoRequest { seed, until: demo_until.unwrap_or_else(|| chrono::Utc::now().date_naive()) });
            let config = Config { data_dir, seeds, catalog, demo, today: None, answer_cache_bytes: answer_cache_mib << 20 };
            run_serve(&bind, &config, HttpConfig { cors_origins, trusted_proxies })
        }
        Command::Token { action, data_dir, seeds } => run_token(action, &Config { seeds, ..Config::new(data_dir) }),
        Command::Import { from, region, out, catalog } => run_import(from, region, out, catalog),
        Command::Health { url, timeout } => run_health(url, timeout),
        Command::Check { data_dir, json } => run_check(&data_dir, json),
        Command::AcceptLoss { data_dir } => run_accept_loss(&data_dir),
        Command::Migrate { data_dir } => run_migrate(&data_dir),
        Command::Backup { to, data_dir, url, token_file } => run_backup(&to, data_dir.as_deref(), url.as_deref(), token_file.as_deref()),
        Command::Restore { from, data_dir } => run_restore(&from, &data_dir),
        Command::Eval { seeds, until, cuts, overrides, sim, no_ablation, json } => {
            run_eval(&EvalArgs { seeds, until, cuts, overrides, sim, ablation: !no_ablation, json })
        }
    };
    if let Err(e) = result {
        // The whole chain: the cause of a store failure is in its source.
        eprintln!("error: {}", e.chain());
        std::process::exit(1);
    }
}

/// Exit status of `serve` when the store failed a write and the disk accepts writes again:
/// sled keeps its first write error until reopened, so the process ends for its supervisor
/// (Docker's restart policy, systemd's `Restart=on-failure`) to restart it (`EX_TEMPFAIL`).
const EXIT_STORE_RESTART: i32 = 75;

/// How often the store's watchdog looks at a failing store.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

fn run_serve(bind: &str, config: &Config, http: HttpConfig) -> Result<(), Error> {
    let purging = voisinage::purge_freed_memory_at_once();
    let service = Arc::new(Service::open(config)?);
    drop(purging);
    let listener = TcpListener::bind(bind)?;
    let watched = service.clone();
    std::thread::Builder::new().name("store-watchdog".into()).spawn(move || watch_store(&watched))?;
    tracing::info!(address = %listener.local_addr()?, data_dir = %config.data_dir.display(), cors_origins = ?http.cors_origins, trusted_proxies = ?http.trusted_proxies, "voisinage listening");
    let rt = actix_rt::System::new();
    rt.block_on(async { serve(service.clone(), listener, http)?.await })?;
    // A clean shutdown: the server has stopped taking requests and finished those under way.
    if let Err(e) = service.close() {
        tracing::warn!(error = %e.chain(), "no index snapshot written: the next start rebuilds the index from the records");
    }
    Ok(())
}

/// `voisinage migrate`: opens the store in `data_dir`, which migrates it when it is of an older
/// format (backup first, progress bars), and says what was done.
fn run_migrate(data_dir: &Path) -> Result<(), Error> {
    if !Store::exists_in(data_dir) {
        return Err(Error::NotFound(format!("{} holds no voisinage store (no store/ folder in it)", data_dir.display())));
    }
    let mut steps = Steps::default();
    let opened = Store::open_with_progress(data_dir, &mut |step, done, total| steps.update(step, done, total));
    steps.finish();
    let (store, migration) = opened.map_err(|e| match e {
        Error::Storage { context, source } if context.starts_with("opening") => {
            Error::Storage { context: format!("{context} (is the service running on this data folder? stop it first)"), source }
        }
        e => e,
    })?;
    match migration {
        Some(m) => println!(
            "{}: migrated from store format {} to {} ({} values read, {} written; backup taken first: {}); {} bytes on disk",
            data_dir.display(),
            m.from,
            m.to,
            m.records,
            m.rewritten,
            m.backup.display(),
            store.size_on_disk()
        ),
        None => println!("{}: already of store format {}, nothing to migrate", data_dir.display(), voisinage::store::records::FORMAT),
    }
    Ok(())
}

/// The store's watchdog: after a failed write, probes the store then the disk every
/// [`WATCH_INTERVAL`]; clears the failure when the store writes again, exits with
/// [`EXIT_STORE_RESTART`] when the disk has room but the store still fails.
fn watch_store(service: &Service) {
    use voisinage::service::StoreWatch;
    let mut waiting_since: Option<std::time::Instant> = None;
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        if service.store_failure().is_none() {
            waiting_since = None;
            continue;
        }
        match service.watch_store() {
            StoreWatch::Healthy => waiting_since = None,
            StoreWatch::Failing => {
                // One line a minute while the disk stays full.
                if waiting_since.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                    tracing::warn!("the store refuses writes and the disk has no room: free space in the data folder; the service restarts itself once it has");
                    waiting_since = Some(std::time::Instant::now());
                }
            }
            StoreWatch::RestartNeeded => {
                tracing::error!(
                    status = EXIT_STORE_RESTART,
                    "the disk accepts writes again but the store keeps its write error until reopened: exiting for the supervisor to restart the service (every acknowledged write is on disk)"
                );
                std::process::exit(EXIT_STORE_RESTART);
            }
        }
    }
}

/// The URL `voisinage health` asks by default: /health/ready on VOISINAGE_BIND's port.
fn default_health_url(bind: Option<&str>) -> String {
    let addr: Option<std::net::SocketAddr> = bind.and_then(|b| b.parse().ok());
    match addr {
        Some(a) if a.ip().is_unspecified() => format!("http://127.0.0.1:{}/health/ready", a.port()),
        Some(a) => format!("http://{a}/health/ready"),
        None => "http://127.0.0.1:8080/health/ready".into(),
    }
}

fn run_health(url: Option<String>, timeout: u64) -> Result<(), Error> {
    let url = url.unwrap_or_else(|| default_health_url(std::env::var("VOISINAGE_BIND").ok().as_deref()));
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout))
        .build()
        .map_err(|e| Error::internal("building the HTTP client", e))?;
    match client.get(&url).send() {
        Ok(r) if r.status().is_success() => {
            println!("{url}: {}", r.status());
            Ok(())
        }
        Ok(r) => {
            let status = r.status();
            let body: String = r.text().unwrap_or_default().chars().take(500).collect();
            eprintln!("{url}: {status} {body}");
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("{url}: no answer: {e}");
            std::process::exit(1)
        }
    }
}

fn run_token(action: TokenAction, config: &Config) -> Result<(), Error> {
    // Parse before opening the store, so that a typo does not need the store.
    let scope = match &action {
        TokenAction::Create { scope, .. } => Some(TokenScope::parse(scope)?),
        _ => None,
    };
    let service = Service::open(config).map_err(|e| match e {
        Error::Storage { context, source } => Error::Storage {
            context: format!("{context} (is the service running on this data folder? stop it, or use POST /api/v1/tokens with an admin token)"),
            source,
        },
        e => e,
    })?;
    let operator = Principal::OPERATOR;
    match action {
        TokenAction::Create { label, .. } => {
            let scope = scope.ok_or_else(|| Error::Malformed("--scope is required".into()))?;
            let (t, secret) = service.create_token(&operator, scope, &label)?;
            eprintln!("token {} created for {}; keep the secret now, it is not stored and cannot be shown again:", t.id, t.scope);
            println!("{secret}");
        }
        TokenAction::List => {
            println!("id\tscope\tcreated\trevoked\tlabel");
            for t in service.tokens(&operator)? {
                let revoked = t.revoked.map(|r| r.to_rfc3339()).unwrap_or_else(|| "-".into());
                println!("{}\t{}\t{}\t{}\t{}", t.id, t.scope, t.created.to_rfc3339(), revoked, t.label);
            }
        }
        TokenAction::Revoke { id } => {
            let t = service.revoke_token(&operator, id)?;
            println!("token {} ({}) revoked at {}", t.id, t.scope, t.revoked.map(|r| r.to_rfc3339()).unwrap_or_default());
        }
    }
    // Sealed again (opening it took the seal): the index snapshot is still fresh, tokens are
    // not in it, and the next start need not count the records.
    if let Err(e) = service.seal() {
        tracing::warn!(error = %e.chain(), "the store is not sealed: the next start counts its records");
    }
    Ok(())
}

/// Prints the integrity report of the store in `data_dir`; exits 1 unless it is ok.
fn run_check(data_dir: &std::path::Path, json: bool) -> Result<(), Error> {
    let report = Store::check(data_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::internal("check report", e))?);
    } else {
        print!("store: {}\n{}", data_dir.display(), report.render());
    }
    if report.verdict != Verdict::Ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Rewrites the ledger of the store in `data_dir` to what it holds, saying what was given up.
fn run_accept_loss(data_dir: &std::path::Path) -> Result<(), Error> {
    let report = Store::accept_loss(data_dir).map_err(|e| match e {
        Error::Storage { context, source } => {
            Error::Storage { context: format!("{context} (is the service running on this data folder? stop it first)"), source }
        }
        e => e,
    })?;
    match report.verdict {
        Verdict::Ok => println!("nothing to accept: the store holds every acknowledged record; ledger rewritten"),
        Verdict::NoLedger => println!("the store had no ledger: one was made from the records it holds"),
        Verdict::Damaged => {
            println!("loss accepted ({}).", report.findings());
            if report.ledger == "found" {
                println!("The ledger now counts the records held; ids up to {} are never given again.", report.next_id.saturating_sub(1));
            } else {
                println!("The ledger now counts the records held; new ids go past every id the store holds.");
            }
        }
    }
    Ok(())
}

/// The `eval` command's arguments.
struct EvalArgs {
    seeds: String,
    until: NaiveDate,
    cuts: Vec<NaiveDate>,
    overrides: Vec<String>,
    sim: Vec<String>,
    ablation: bool,
    json: bool,
}

/// Parses `6-15`, `7` or `1,3,5`. Errors: `Malformed`.
fn parse_seeds(text: &str) -> Result<Vec<u64>, Error> {
    let bad = || Error::Malformed(format!("--seeds takes 6-15, 7 or 1,3,5; got '{}'", text.chars().take(40).collect::<String>()));
    let mut out = Vec::new();
    for part in text.split(',') {
        match part.trim().split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if b < a || b - a >= 1000 {
                    return Err(Error::Malformed(format!("--seeds: a range goes up and spans at most 1000 seeds, got {a}-{b}")));
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

fn split_pair(o: &str) -> Result<(&str, &str), Error> {
    o.split_once('=').ok_or_else(|| Error::Malformed(format!("--set and --sim take name=value, got '{o}'")))
}

fn run_eval(args: &EvalArgs) -> Result<(), Error> {
    let seeds = parse_seeds(&args.seeds)?;
    let mut params = Params::default();
    for o in &args.overrides {
        let (name, value) = split_pair(o)?;
        params.set(name, value)?;
    }
    let mut base = SimParams::new(0, args.until);
    for o in &args.sim {
        let (name, value) = split_pair(o)?;
        base.set(name, value)?;
    }
    let settings = EvalSettings { cuts: args.cuts.clone(), ..EvalSettings::default() };
    settings.validate(base.start, args.until)?;
    let (territory, catalog) = (seeds::territory()?, seeds::catalog()?);
    let sim = move |seed: u64| SimParams { seed, ..base.clone() };
    let simulation = eval::Simulation { params_of: &sim, overrides: &args.sim, ablation: args.ablation };
    // Steps: each seed's simulated history, then each cut evaluated on it.
    let progress = std::sync::Mutex::new(Progress::new("eval", 0).unit("steps"));
    let doc = eval::run_with_progress(&territory, &catalog, &seeds, &simulation, &settings, &params, &|done, total| {
        progress.lock().unwrap_or_else(|e| e.into_inner()).update(done, total)
    });
    progress.into_inner().unwrap_or_else(|e| e.into_inner()).finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc).map_err(|e| Error::internal("eval document", e))?);
        return Ok(());
    }
    let set = if args.overrides.is_empty() { "default parameters".to_string() } else { format!("parameters: defaults with {}", args.overrides.join(", ")) };
    let set = if args.sim.is_empty() { set } else { format!("{set}; simulation: defaults with {}", args.sim.join(", ")) };
    println!("Decision quality on simulated histories (seeds {}, until {}), {set}.\n", args.seeds, args.until);
    for v in std::iter::once(&doc.results).chain(doc.ablation.as_ref()) {
        println!("Simulation: {}, all cuts and seeds\n", v.simulation);
        println!("{}", eval::table(&v.pooled));
    }
    Ok(())
}

fn run_import(from: PathBuf, region: String, out: PathBuf, catalog: PathBuf) -> Result<(), Error> {
    let scope = if region == "all" { ImportArea::All } else { ImportArea::Region(region) };
    let opts = ImportOptions::new(from, scope, out.clone(), Some(catalog));
    // One progress bar per step (log lines when standard error is not a terminal).
    let mut steps = Steps::default();
    let report = import::run(&opts, &mut |step, done, total| steps.update(step, done, total));
    steps.finish();
    let report = report?;
    println!(
        "{} communes, {} EPCI, {} border edges, {} nearest edges, {} unmapped codes; report in {}",
        report.communes,
        report.epcis,
        report.border_edges,
        report.nearest_edges,
        report.unmapped.len(),
        out.join("IMPORT_REPORT.md").display()
    );
    Ok(())
}

/// `voisinage backup`: fetches or writes the backup into `{to}.partial`, checks the whole file
/// ([`backup::read`]), syncs it, renames it to `to` and syncs the folder; the partial file is
/// removed on any failure.
fn run_backup(to: &Path, data_dir: Option<&Path>, url: Option<&str>, token_file: Option<&Path>) -> Result<(), Error> {
    let name = to.file_name().ok_or_else(|| Error::Malformed(format!("--to {} names no file", to.display())))?;
    let partial = to.with_file_name(format!("{}.partial", name.to_string_lossy()));
    let source = match (data_dir, url) {
        (_, Some(url)) => url.to_string(),
        (Some(d), None) => d.display().to_string(),
        (None, None) => return Err(Error::Malformed("give --url (the running service) or --data-dir (a stopped store)".into())),
    };
    tracing::info!(from = %source, to = %to.display(), "backup started");
    let token = match url {
        Some(_) => Some(admin_token(token_file)?),
        None => None,
    };
    let saved = (|| {
        let mut file = std::fs::File::create(&partial)?;
        match (data_dir, url, &token) {
            (_, Some(url), Some(token)) => download_backup(url, token, &mut file)?,
            (Some(d), _, _) => {
                let mut progress = Progress::new("backup", 0);
                service::backup_data_dir(d, chrono::Utc::now(), &mut file, &mut |done, total| progress.update(done, total))?;
                progress.finish();
            }
            _ => unreachable!("checked above"),
        }
        file.sync_all()?;
        drop(file);
        let summary = backup::read(std::io::BufReader::new(std::fs::File::open(&partial)?), &mut |_| Ok(()))?;
        std::fs::rename(&partial, to)?;
        if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent).and_then(|f| f.sync_all())?;
        }
        Ok::<_, Error>(summary)
    })();
    let summary = saved.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    tracing::info!(to = %to.display(), records = summary.counts.total(), bytes, "backup saved and checked");
    println!(
        "{}: {} ({} records, {bytes} bytes, taken {})",
        to.display(),
        summary.counts,
        summary.counts.total(),
        summary.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}

/// The admin token for `backup --url`: the first line of `token_file`, else env
/// `VOISINAGE_TOKEN`.
fn admin_token(token_file: Option<&Path>) -> Result<String, Error> {
    let token = match token_file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| Error::Malformed(format!("--token-file {}: {e}", f.display())))?,
        None => {
            std::env::var("VOISINAGE_TOKEN").map_err(|_| Error::Malformed("--url needs an admin token: --token-file FILE, or env VOISINAGE_TOKEN".into()))?
        }
    };
    let token = token.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(Error::Malformed("the admin token is empty".into()));
    }
    Ok(token)
}

/// `POST {url}/api/v1/admin/backups` with the token, the body copied into `out`. Errors: the
/// service's problem (status and detail), or the transport's failure.
fn download_backup(url: &str, token: &str, out: &mut std::fs::File) -> Result<(), Error> {
    let transport = |e: reqwest::Error| Error::Io(std::io::Error::other(format!("backup from {url}: {e}")));
    if !url.starts_with("http://") {
        return Err(Error::Malformed(format!(
            "--url takes http://HOST:PORT (this build speaks plain HTTP, e.g. to the service on its own machine), got '{url}'"
        )));
    }
    // No overall timeout: a national store takes minutes to stream.
    let client = reqwest::blocking::Client::builder().timeout(None).build().map_err(transport)?;
    let endpoint = format!("{}/api/v1/admin/backups", url.trim_end_matches('/'));
    let mut r = client.post(&endpoint).bearer_auth(token).send().map_err(transport)?;
    if !r.status().is_success() {
        let status = r.status();
        let body = r.text().unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|v| v["detail"].as_str().map(str::to_string)).unwrap_or(body);
        return Err(Error::Io(std::io::Error::other(format!("{endpoint} answered {status}: {detail}"))));
    }
    r.copy_to(out).map_err(transport)?;
    Ok(())
}

/// `voisinage restore`: [`service::restore`] with a progress bar per step (log lines when
/// standard error is not a terminal).
fn run_restore(from: &Path, data_dir: &Path) -> Result<(), Error> {
    tracing::info!(from = %from.display(), data_dir = %data_dir.display(), "restore started");
    let mut steps = Steps::default();
    let summary = service::restore(from, data_dir, &mut |step, done, total| steps.update(step, done, total));
    steps.finish();
    let summary = summary?;
    tracing::info!(data_dir = %data_dir.display(), records = summary.counts.total(), next_id = summary.state.next_id, "restore done");
    println!(
        "{}: {} restored from the backup of {} (next id {}{})",
        data_dir.display(),
        summary.counts,
        summary.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        summary.state.next_id,
        if summary.state.demo.is_some() { ", simulated demo history" } else { "" }
    );
    Ok(())
}
