//! `tlscache-loadgen`: the project's main job. Runs a proxy workload
//! against each engine and prints them side by side.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use tlscache_loadgen::memory::{probe, CountingAlloc};
use tlscache_loadgen::{
    plot, run, table, tiers_table, Engine, EngineKind, Preset, Report, Run, TwoTier, Workload,
};

/// Counts heap bytes during memory probes only (see `memory`).
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Drives tlscache and its peers with modelled TLS-proxy traffic and prints
/// throughput, hit ratio and latency side by side.
#[derive(Parser, Debug)]
#[command(name = "tlscache-loadgen", version)]
struct Args {
    /// The workload to start from; the flags below override its knobs.
    #[arg(long, value_enum, default_value_t = Preset::Proxy)]
    preset: Preset,
    /// Engines to run, comma-separated (tlscache always runs first).
    #[arg(long, value_delimiter = ',', value_parser = engine_kinds())]
    engines: Vec<EngineKind>,
    /// Distinct clients.
    #[arg(long)]
    clients: Option<u32>,
    /// Zipf exponent of client popularity.
    #[arg(long)]
    zipf: Option<f64>,
    /// Share of connections that try to resume (0 to 1).
    #[arg(long)]
    resume: Option<f64>,
    /// Resume with single-use tickets (take) rather than session ids.
    #[arg(long)]
    tickets: Option<bool>,
    /// Simulated CPU cost of a full handshake, in nanoseconds.
    #[arg(long)]
    handshake_ns: Option<u64>,
    /// Smallest session, in bytes.
    #[arg(long)]
    min_size: Option<usize>,
    /// Largest session, in bytes.
    #[arg(long)]
    max_size: Option<usize>,
    /// Session timeout, in seconds.
    #[arg(long)]
    timeout_secs: Option<u64>,
    /// Sessions each engine may hold.
    #[arg(long)]
    capacity: Option<usize>,
    /// Threads driving each engine; a comma-separated list runs each count
    /// in turn (throughput against threads).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed connections per thread.
    #[arg(long)]
    ops: Option<u64>,
    /// Untimed warm-up connections per thread.
    #[arg(long)]
    warmup: Option<u64>,
    /// Seed of every random choice (equal seeds, equal connections).
    #[arg(long)]
    seed: Option<u64>,
    /// Shift the client population every this many connections per thread
    /// (0: never).
    #[arg(long)]
    churn_every: Option<u64>,
    /// Sessions made during the warm-up live only this many seconds, and
    /// timing starts once they have all expired: a mass-expiry phase.
    #[arg(long)]
    mass_expiry_secs: Option<u64>,
    /// Also run the two-tier setup: proxies with a local tlscache each,
    /// sharing sessions through the Redis at this address
    /// (redis://HOST:PORT). Without --engines, only tlscache and
    /// tlscache-policy run beside it.
    #[arg(long, value_name = "URL")]
    external: Option<String>,
    /// Proxies in the two-tier setup; connections reach them in turn.
    #[arg(long, default_value_t = 2)]
    proxies: usize,
    /// Also draw throughput against threads and the latency distribution
    /// as an SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    fn workload(&self) -> Workload {
        let mut w = Workload::preset(self.preset);
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field {
                    w.$field = v;
                }
            )*};
        }
        set!(
            clients,
            zipf,
            resume,
            tickets,
            handshake_ns,
            min_size,
            max_size
        );
        set!(capacity, ops, warmup, seed, churn_every);
        if let Some(secs) = self.timeout_secs {
            w.timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = self.mass_expiry_secs {
            w.mass_expiry = Some(Duration::from_secs(secs));
        }
        w
    }
}

/// An engine to run: one of the in-process kinds, or the two-tier setup
/// on a Redis.
#[derive(Debug)]
enum Choice {
    Kind(EngineKind),
    External(String),
}

impl Choice {
    fn build(&self, w: &Workload, proxies: usize) -> Result<Box<dyn Engine>, String> {
        match self {
            Choice::Kind(kind) => kind.build(w.capacity, w.timeout),
            Choice::External(url) => Ok(Box::new(TwoTier::new(url, proxies, w.capacity)?)),
        }
    }
}

/// Prints `message` and the usage to stderr and exits with status 2.
fn usage_error(message: String) -> ! {
    // clap's own messages end in the "--help" hint, and some carry the
    // usage already: add each only where it is missing.
    const HINT: &str = "For more information, try '--help'.";
    let mut message = message.trim_end().replace(HINT, "").trim_end().to_string();
    if !message.contains("Usage:") {
        message.push_str(&format!("\n\n{}", Args::command().render_usage()));
    }
    eprintln!("{message}\n\n{HINT}");
    std::process::exit(2)
}

/// An engine whose single-use take scans its whole cache (rustls's
/// `ServerSessionMemoryCache` finds a taken key's place in its queue by a
/// search) runs at most this many connections per thread, per entry of
/// capacity, under `--preset tls13-tickets`: 20,000 a thread at 100k
/// entries, about ten seconds, where the full run would take more than ten
/// minutes. Its rates are per second, so they still compare; the table
/// says it ran fewer.
const SLOW_TAKE_BUDGET: u64 = 2_000_000_000;

/// The connections per thread (warm-up, timed) `choice` runs of `w`, and
/// the name its row carries when that is fewer than `w`'s.
fn budget(choice: &Choice, w: &Workload) -> (u64, u64, Option<&'static str>) {
    let slow = w.tickets && matches!(choice, Choice::Kind(EngineKind::Rustls));
    let cap = (SLOW_TAKE_BUDGET / w.capacity.max(1) as u64).max(1_000);
    if slow && (w.ops > cap || w.warmup > cap) {
        let note = "rustls (fewer connections: O(n) takes)";
        (w.warmup.min(cap), w.ops.min(cap), Some(note))
    } else {
        (w.warmup, w.ops, None)
    }
}

/// `--engines`' parser: the engines' labels, as clap lists them in its
/// help and errors.
fn engine_kinds() -> impl clap::builder::TypedValueParser<Value = EngineKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(EngineKind::ALL.map(EngineKind::label))
        .try_map(|label| label.parse::<EngineKind>())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => usage_error(e.render().to_string()),
    };
    let workload = args.workload();
    if let Err(message) = workload.check() {
        usage_error(format!("error: {message}\n"));
    }
    let mut engines = vec![EngineKind::Tlscache];
    let chosen = match (&args.external, args.engines.is_empty()) {
        (_, false) => args.engines.clone(),
        (None, true) => EngineKind::ALL.to_vec(),
        (Some(_), true) => vec![EngineKind::Policy],
    };
    engines.extend(chosen.into_iter().filter(|e| *e != EngineKind::Tlscache));
    let mut engines: Vec<Choice> = engines.into_iter().map(Choice::Kind).collect();
    if let Some(url) = &args.external {
        if args.proxies == 0 {
            usage_error("error: --proxies must be at least 1\n".into());
        }
        engines.push(Choice::External(url.clone()));
    }
    let sweep = if args.threads.is_empty() {
        vec![workload.threads]
    } else {
        args.threads.clone()
    };
    let workloads: Vec<Workload> = sweep
        .iter()
        .map(|&threads| Workload {
            threads,
            ..workload.clone()
        })
        .collect();
    for w in &workloads {
        if let Err(message) = w.check() {
            usage_error(format!("error: {message}\n"));
        }
    }

    // The shared tier runs last: reach its Redis before any engine runs,
    // so a bad address fails at once and not after the others' work.
    for choice in engines.iter().filter(|c| matches!(c, Choice::External(_))) {
        if let Err(message) = choice.build(&workloads[0], args.proxies) {
            eprintln!("tlscache-loadgen: cannot build {choice:?}: {message}");
            return ExitCode::from(2);
        }
    }

    let total: u64 = workloads
        .iter()
        .flat_map(|w| engines.iter().map(move |c| (c, w)))
        .map(|(c, w)| {
            let (warmup, ops, _) = budget(c, w);
            (warmup + ops) * w.threads as u64
        })
        .sum();
    eprintln!(
        "{} preset: {} connections per thread, threads {:?}, {} engines",
        workload.preset.name(),
        workload.ops,
        sweep,
        engines.len()
    );
    // Hidden until the run has taken a second: short runs print no bar.
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::hidden(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} connections {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut finished = 0;
    let mut report = Report::new(workload.clone());
    for w in &workloads {
        let streams: Vec<_> = (0..w.threads).map(|t| w.streams(t)).collect();
        let states = w.states();
        let mut outcomes = Vec::new();
        for choice in &engines {
            let engine = match choice.build(w, args.proxies) {
                Ok(engine) => engine,
                Err(message) => {
                    bar.finish_and_clear();
                    eprintln!("tlscache-loadgen: cannot build {choice:?}: {message}");
                    return ExitCode::from(2);
                }
            };
            let (warmup, ops, note) = budget(choice, w);
            let trimmed: Vec<_>;
            let streams = if note.is_some() {
                trimmed = streams
                    .iter()
                    .map(|(warm, timed)| {
                        let take = |v: &Vec<_>, n: u64| v[..v.len().min(n as usize)].to_vec();
                        (take(warm, warmup), take(timed, ops))
                    })
                    .collect();
                &trimmed
            } else {
                &streams
            };
            bar.set_message(match note {
                Some(_) => format!(
                    "{} × {} threads, {ops} connections each: its takes are O(n)",
                    engine.name(),
                    w.threads
                ),
                None => format!("{} × {} threads", engine.name(), w.threads),
            });
            let progress = AtomicU64::new(0);
            let done = AtomicBool::new(false);
            let outcome = std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        if started.elapsed() > Duration::from_secs(1) && bar.is_hidden() {
                            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                        }
                        bar.set_position(finished + progress.load(Ordering::Relaxed));
                    }
                });
                let outcome = run(&*engine, w, streams, &states, &progress);
                done.store(true, Ordering::Relaxed);
                outcome
            });
            finished += (warmup + ops) * w.threads as u64;
            drop(engine);
            let mut outcome = outcome;
            if let Some(note) = note {
                outcome.engine = note;
            }
            if let Choice::Kind(kind) = choice {
                outcome.bytes_per_session = probe(*kind, w);
            }
            outcomes.push(outcome);
        }
        report.runs.push(Run {
            threads: w.threads,
            outcomes,
        });
    }
    bar.finish_and_clear();

    println!(
        "{} preset, {} connections per thread, {} clients (zipf {}), resume {:.0}%{}, capacity {}, on {}",
        workload.preset.name(),
        workload.ops,
        workload.clients,
        workload.zipf,
        workload.resume * 100.0,
        match (workload.tickets, workload.mass_expiry) {
            (true, _) => " with single-use tickets".to_string(),
            (false, Some(d)) => format!(", every warm-up session expired ({} s) when timing starts", d.as_secs()),
            (false, None) => String::new(),
        },
        workload.capacity,
        report.machine
    );
    for run in &report.runs {
        println!("\n{} threads:\n", run.threads);
        print!("{}", table(run));
        if let Some(tiers) = tiers_table(run) {
            println!(
                "\nTiers of the two-tier setup ({} proxies, timed part):\n",
                args.proxies
            );
            print!("{tiers}");
        }
    }
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("tlscache-loadgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.plot {
        if let Err(e) = plot::draw(&report, path) {
            eprintln!("tlscache-loadgen: cannot draw {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
