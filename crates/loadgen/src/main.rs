//! `tlscache-loadgen`: the project's main job. Runs a proxy workload
//! against each engine and prints them side by side.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use tlscache_loadgen::{run, table, EngineKind, Preset, Report, Workload};

/// Drives tlscache and its peers with modelled TLS-proxy traffic and prints
/// throughput, hit ratio and latency side by side.
#[derive(Parser, Debug)]
#[command(name = "tlscache-loadgen", version)]
struct Args {
    /// The workload to start from; the flags below override its knobs.
    #[arg(long, value_enum, default_value_t = Preset::Proxy)]
    preset: Preset,
    /// Engines to run, comma-separated (tlscache always runs first).
    #[arg(long, value_enum, value_delimiter = ',')]
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
    /// Threads driving each engine.
    #[arg(long)]
    threads: Option<usize>,
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
        set!(capacity, threads, ops, warmup, seed, churn_every);
        if let Some(secs) = self.timeout_secs {
            w.timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = self.mass_expiry_secs {
            w.mass_expiry = Some(Duration::from_secs(secs));
        }
        w
    }
}

/// Prints `message` and the usage to stderr and exits with status 2.
fn usage_error(message: String) -> ! {
    let usage = Args::command().render_usage();
    eprint!("{message}");
    if !message.contains("Usage:") {
        eprintln!("\n{usage}\n\nFor more information, try '--help'.");
    }
    std::process::exit(2)
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
    let chosen = if args.engines.is_empty() {
        EngineKind::ALL.to_vec()
    } else {
        args.engines.clone()
    };
    engines.extend(chosen.into_iter().filter(|e| *e != EngineKind::Tlscache));

    eprintln!(
        "{:?}: {} threads × {} connections on {} engines",
        workload.preset,
        workload.threads,
        workload.ops,
        engines.len()
    );
    let streams: Vec<_> = (0..workload.threads).map(|t| workload.streams(t)).collect();
    let states = workload.states();
    let per_engine = (workload.ops + workload.warmup) * workload.threads as u64;
    // Hidden until the run has taken a second: short runs print no bar.
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(per_engine * engines.len() as u64),
        indicatif::ProgressDrawTarget::hidden(),
    );
    let started = std::time::Instant::now();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} connections {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut report = Report::new(workload.clone());
    for (n, kind) in engines.iter().enumerate() {
        let engine = match kind.build(workload.capacity, workload.timeout) {
            Ok(engine) => engine,
            Err(message) => {
                eprintln!("tlscache-loadgen: cannot build {kind:?}: {message}");
                return ExitCode::from(2);
            }
        };
        bar.set_message(engine.name().to_string());
        let progress = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if started.elapsed() > Duration::from_secs(1) && bar.is_hidden() {
                        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    }
                    bar.set_position(n as u64 * per_engine + progress.load(Ordering::Relaxed));
                }
            });
            let outcome = run(&*engine, &workload, &streams, &states, &progress);
            done.store(true, Ordering::Relaxed);
            outcome
        });
        report.outcomes.push(outcome);
    }
    bar.finish_and_clear();

    println!(
        "{:?} preset, {} threads × {} connections, {} clients (zipf {}), resume {:.0}%{}, capacity {}, on {}\n",
        workload.preset,
        workload.threads,
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
    print!("{}", table(&report));
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("tlscache-loadgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
