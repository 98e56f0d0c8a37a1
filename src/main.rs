//! The `rowcast` command line: parse arguments, load the config, set up logging, run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rowcast::config::{self, Config, Problem};
use rowcast::dynamo::tables::{
    check_table, create_table, enable_streams, needed_tables, CreateOutcome, STREAMS_NEEDED,
};
use rowcast::error::chain;
use tokio_util::sync::CancellationToken;

/// mimalloc: every row change allocates its cells, keys and attribute values, and glibc's
/// allocator took a third of the CPU path (`perf` on `benches/cpu.rs`, issue 13).
#[global_allocator]
static ALLOCATOR: rowcast::util::alloc::Mimalloc = rowcast::util::alloc::Mimalloc;

/// Keeps DynamoDB materialized views of a MySQL/MariaDB database, from its binlog.
#[derive(Parser)]
#[command(name = "rowcast", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "ROWCAST_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax), e.g. `info` or `rowcast=debug`.
    #[arg(long, default_value = "info", global = true, env = "ROWCAST_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: follow the binlog and keep the views. SIGTERM drains, checkpoints, exits 0;
    /// SIGHUP reads the configuration again and applies it (see POST /v1/reload).
    Run {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the config and the view specs; with --connect, also check the servers.
    Check {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Also check MariaDB/MySQL settings, privileges, the checkpoint, the columns the views
        /// use, and the DynamoDB tables.
        #[arg(long)]
        connect: bool,
    },
    /// Ask the running daemon (on the config's `[api] listen`) to backfill a view again from
    /// its first row, while it keeps streaming: to repair a view that drifted.
    Snapshot {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The view to backfill again.
        #[arg(long)]
        view: String,
    },
    /// Compare the views' items with what the source makes, while the daemon keeps streaming.
    /// One `DIFF` line per difference, one summary line per view. Exit 0 when equal (or all
    /// repaired), 4 when differences remain, 2 for a bad configuration, 1 for other errors.
    Verify {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// A view to verify (repeatable; default: every view).
        #[arg(long = "view")]
        views: Vec<String>,
        /// Send every difference through the running daemon (its API listener): missing and
        /// different items are written from the source, extra items removed; then verify
        /// those keys again.
        #[arg(long)]
        repair: bool,
        /// One JSON object per difference instead of a DIFF line.
        #[arg(long)]
        json: bool,
        /// Show the expected and the stored values of each difference.
        #[arg(long)]
        show_values: bool,
        /// DynamoDB Scan segments read in parallel.
        #[arg(long, default_value_t = 4)]
        segments: i32,
        /// Items per second read at most on each side (0: no limit).
        #[arg(long, default_value_t = 0)]
        rate: u32,
        /// Seconds to wait for the daemon's checkpoint to pass a comparison point.
        #[arg(long, default_value_t = 60)]
        checkpoint_wait_s: u64,
    },
    /// Propose a single-table design from a database's information_schema: rowcast.toml, one
    /// view per table (keys, lookups and embeds along foreign keys, GSIs from unique and
    /// secondary keys) and SUGGESTIONS.md, under --out.
    Suggest(SuggestArgs),
    /// Write views' items, read at one consistent point, as DynamoDB S3 import data (gzip
    /// DynamoDB JSON lines and a manifest.json) under --to.
    Export(ExportArgs),
    /// Set the checkpoint from an export's manifest.json, as `export --checkpoint` would have
    /// (for an export made without it, or whose checkpoint could not be saved), so that
    /// `rowcast run` after the import resumes at the export's position.
    Checkpoint {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The export's directory, or s3://BUCKET/PREFIX.
        #[arg(long)]
        from_manifest: String,
        /// The S3 endpoint of an S3-compatible store (path-style addressing); default: AWS.
        #[arg(long)]
        s3_endpoint_url: Option<String>,
    },
    /// Print every item of a DynamoDB table as JSON lines (plain values), for inspection.
    Scan {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Table to scan.
        #[arg(long)]
        table: String,
    },
    /// Read one partition of a view table with Query, page by page, in sort-key order (as an
    /// application reads it): `--pk CHANNEL#WEB`.
    Query {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Table to read.
        #[arg(long)]
        table: String,
        /// The partition key value.
        #[arg(long)]
        pk: String,
        /// Items per Query request (page).
        #[arg(long, default_value_t = 25)]
        page_size: i32,
        /// A global secondary index of the table (`[[index]]`); `--pk` is then its partition
        /// key value (read eventually consistently, as DynamoDB reads every GSI).
        #[arg(long)]
        index: Option<String>,
    },
    /// Dead letters: items DynamoDB could never accept (and write-back records SQL refused).
    Deadletters {
        #[command(subcommand)]
        action: DeadlettersAction,
    },
    /// Manage the DynamoDB tables the views need.
    Tables {
        /// Daemon config file (TOML).
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        action: TablesAction,
    },
}

#[derive(Subcommand)]
enum DeadlettersAction {
    /// Print the dead letters as JSON lines (view, key, reason, source position).
    List {
        #[arg(long)]
        config: PathBuf,
        /// Only this view's (repeatable; default: every view).
        #[arg(long = "view")]
        views: Vec<String>,
    },
    /// Once the cause is fixed: send each letter's item through the running daemon (read again
    /// from the source, merged in order) and remove the letter; one that fails again comes back.
    Replay {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "view")]
        views: Vec<String>,
    },
    /// Remove the dead letters.
    Purge {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "view")]
        views: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TablesAction {
    /// Create every table the views (and the checkpoint) need; an existing table gets the GSIs
    /// it lacks and, for a write-back view, its stream turned on; its keys are left as they are.
    Create,
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a file, a pipe or a container's log collector
    // gets plain text (and `NO_COLOR` turns them off anywhere, as no-color.org asks).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        eprintln!("error: {problem}");
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|errors| {
        print_problems(&errors.0);
        eprintln!("{} problem(s) in the configuration", errors.0.len());
        ExitCode::from(2)
    })
}

#[derive(clap::Args)]
struct SuggestArgs {
    /// `mysql://user:password@host:port` (the password is not written out).
    #[arg(long)]
    source: String,
    #[arg(long)]
    database: String,
    /// Only these tables (repeat; default: every base table).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// An empty or new directory.
    #[arg(long)]
    out: PathBuf,
    /// The DynamoDB table of the views (default: the database's name).
    #[arg(long)]
    dynamodb_table: Option<String>,
    /// `[dynamodb] endpoint_url` of the written config (DynamoDB Local).
    #[arg(long)]
    dynamodb_endpoint_url: Option<String>,
}

impl From<SuggestArgs> for rowcast::suggest::SuggestRequest {
    fn from(a: SuggestArgs) -> Self {
        rowcast::suggest::SuggestRequest {
            source_url: a.source,
            database: a.database,
            tables: a.tables,
            out: a.out,
            dynamodb_table: a.dynamodb_table,
            dynamodb_endpoint_url: a.dynamodb_endpoint_url,
        }
    }
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Daemon config file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// A view to export (repeat for several; at least one).
    #[arg(long = "view", required = true)]
    views: Vec<String>,
    /// An empty or new directory, or s3://BUCKET/PREFIX with nothing under the prefix.
    #[arg(long)]
    to: String,
    /// Also store the export's position as the checkpoint, the exported views marked
    /// filled, so that `rowcast run` after the import resumes exactly there.
    #[arg(long)]
    checkpoint: bool,
    /// Uncompressed JSON per data file at most, in MiB (a new file after it; a file also ends
    /// at 9,000 S3 parts of compressed data).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=102_400))]
    file_mb: u64,
    /// The S3 endpoint of an S3-compatible store (path-style addressing); default: AWS.
    #[arg(long)]
    s3_endpoint_url: Option<String>,
    /// Then import each table's files with DynamoDB's ImportTable (a new table with the
    /// views' keys and GSIs) and wait until it ends; any item in error fails it. S3 only.
    #[arg(long)]
    import: bool,
}

impl From<&ExportArgs> for rowcast::app::ExportRequest {
    fn from(a: &ExportArgs) -> Self {
        rowcast::app::ExportRequest {
            views: a.views.clone(),
            to: a.to.clone(),
            checkpoint: a.checkpoint,
            max_file_bytes: a.file_mb * 1024 * 1024,
            s3_endpoint_url: a.s3_endpoint_url.clone(),
            import: a.import,
        }
    }
}

/// Tokio worker threads of `rowcast run` unless `TOKIO_WORKER_THREADS` says otherwise. The
/// daemon waits on the network far more than it computes (about 2 µs of projection per row
/// against 10–13 µs in the SDK's request path and the kernel), and a second worker mostly adds
/// wake-ups across threads: in three alternated pairs of `cargo bench --bench e2e` runs on 2
/// cores, one worker backfilled at 1.51–1.66× the bulk loader with 14.0–16.5 µs CPU per row
/// against 1.43–1.47× and 17.0–24.5 µs with two, and streamed at the same rate and latency
/// (README, Performance). Other commands (`export`, `verify`) compute more and keep one worker
/// per core.
const RUN_WORKER_THREADS: usize = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // An explicit count wins over the variable in tokio, so it is only set when the variable is not.
    if matches!(cli.command, Command::Run { .. })
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        builder.worker_threads(RUN_WORKER_THREADS);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run { config } => run(&config).await,
            Command::Check { config, connect } => check(&config, connect).await,
            Command::Tables {
                config,
                action: TablesAction::Create,
            } => tables_create(&config).await,
            Command::Scan { config, table } => scan(&config, &table).await,
            Command::Suggest(args) => suggest(&args.into()).await,
            Command::Export(args) => export(&args.config, (&args).into()).await,
            Command::Checkpoint {
                config,
                from_manifest,
                s3_endpoint_url,
            } => seed_checkpoint(&config, &from_manifest, s3_endpoint_url.as_deref()).await,
            Command::Deadletters { action } => deadletters(action).await,
            Command::Query {
                config,
                table,
                pk,
                page_size,
                index,
            } => query(&config, (&table, index.as_deref()), &pk, page_size).await,
            Command::Snapshot { config, view } => snapshot(&config, &view).await,
            Command::Verify {
                config,
                views,
                repair,
                json,
                show_values,
                segments,
                rate,
                checkpoint_wait_s,
            } => {
                let options = rowcast::verify::Options {
                    segments: segments.clamp(1, 64),
                    rate: (rate > 0).then_some(rate),
                    chunk_rows: 1000,
                    checkpoint_wait: Duration::from_secs(checkpoint_wait_s),
                    repair_via: None,
                };
                let output = VerifyOutput { json, show_values };
                verify(&config, &views, repair, options, output).await
            }
        }
    })
}

/// Kubernetes waits 30 s after SIGTERM by default: finish well before.
const GRACE: Duration = Duration::from_secs(25);

async fn run(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    for warning in config::shared_writeback_columns(&config.views) {
        tracing::warn!("{warning}");
    }
    let shutdown = CancellationToken::new();
    let mut daemon = Box::pin(rowcast::app::run(config, shutdown.clone()));
    let result = tokio::select! {
        result = &mut daemon => result,
        _ = shutdown_signal() => {
            tracing::info!("shutdown requested; draining");
            shutdown.cancel();
            match tokio::time::timeout(GRACE, &mut daemon).await {
                Ok(result) => result,
                Err(_) => {
                    eprintln!("error: not drained within {GRACE:?}; exiting without the final checkpoint (a restart replays from the last one)");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(rowcast::app::AppError::Preflight(problems)) => {
            print_problems(&problems);
            eprintln!("{} preflight problem(s)", problems.len());
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn check(path: &Path, connect: bool) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    for warning in config::shared_writeback_columns(&config.views) {
        eprintln!("warning: {warning}");
    }
    if !connect {
        println!("{}: ok ({} view(s))", path.display(), config.views.len());
        return ExitCode::SUCCESS;
    }
    match rowcast::app::preflight(&config).await {
        Ok(problems) if problems.is_empty() => {
            println!(
                "{}: ok ({} view(s)); servers checked",
                path.display(),
                config.views.len()
            );
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            print_problems(&problems);
            eprintln!("{} problem(s)", problems.len());
            ExitCode::from(3)
        }
        // The servers could not be checked (unreachable, refused, TLS): a server problem too.
        Err(error) => {
            eprintln!("error: {}: {}", path.display(), chain(&error));
            ExitCode::from(3)
        }
    }
}

async fn tables_create(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let client = rowcast::dynamo::client(&config.dynamodb).await;
    let mut failed = false;
    for (table, need) in needed_tables(&config) {
        failed |= !create_one(&client, &table, &need).await;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One table of `tables create`: made, or checked (streams turned on when write-back needs
/// them and it has none), then its indexes; `false` after a problem (printed).
async fn create_one(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    need: &rowcast::dynamo::tables::TableNeed,
) -> bool {
    match create_table(client, table, need).await {
        Ok(CreateOutcome::Created) => {
            let names: Vec<&str> = need.indexes.iter().map(|i| i.name.as_str()).collect();
            let users = need.users.join(", ");
            match names.is_empty() {
                true => println!("created {table} (for {users})"),
                false => println!(
                    "created {table} (for {users}) with index(es) {}",
                    names.join(", ")
                ),
            }
        }
        Ok(CreateOutcome::Exists) => {
            if !fit_existing(client, table, need).await {
                return false;
            }
        }
        Err(info) => {
            eprintln!("error: cannot create {table}: {info}");
            return false;
        }
    }
    create_indexes(client, table, &need.indexes).await
}

/// An existing table checked against the views; the one thing changed in it is streams turned
/// on for write-back when they are all it lacks (a table made by an S3 import has none).
async fn fit_existing(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    need: &rowcast::dynamo::tables::TableNeed,
) -> bool {
    let problems = match check_table(client, table, need).await {
        Ok(problems) => problems,
        Err(info) => {
            eprintln!("error: {table}: {info}");
            return false;
        }
    };
    if problems.is_empty() {
        println!("exists {table}: left as it is");
        return true;
    }
    if problems.iter().all(|p| p.starts_with(STREAMS_NEEDED)) {
        match enable_streams(client, table, need).await {
            Ok(true) => {
                println!("enabled streams (NEW_AND_OLD_IMAGES) on {table} for write-back");
                return true;
            }
            Ok(false) => {}
            Err(info) => {
                eprintln!("error: cannot enable streams on {table}: {info}");
                return false;
            }
        }
    }
    eprintln!(
        "error: {table} exists but does not fit: {}",
        problems.join("; ")
    );
    false
}

/// Adds the indexes a table lacks (waiting until each is active) and checks the ones it has;
/// `false` when one could not be created or does not fit.
async fn create_indexes(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    needs: &[rowcast::dynamo::indexes::IndexNeed],
) -> bool {
    use rowcast::dynamo::index_check::check_table_indexes;
    use rowcast::dynamo::indexes::add_missing;
    if needs.is_empty() {
        return true;
    }
    let progress = |line: &str| println!("{line}");
    match add_missing(client, table, needs, &progress).await {
        Ok(created) => {
            for name in created {
                println!("created index {name} on {table}");
            }
        }
        Err(info) => {
            eprintln!("error: cannot create the indexes of {table}: {info}");
            return false;
        }
    }
    match check_table_indexes(client, table, needs).await {
        Ok(problems) if problems.is_empty() => true,
        Ok(problems) => {
            for p in problems {
                eprintln!("error: {}: {}: {}", p.file.display(), p.field, p.message);
            }
            false
        }
        Err(info) => {
            eprintln!("error: {table}: {info}");
            false
        }
    }
}

async fn export(path: &Path, request: rowcast::app::ExportRequest) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Some(unknown) = request
        .views
        .iter()
        .find(|v| !config.views.iter().any(|view| view.name == **v))
    {
        eprintln!(
            "error: {}: --view {unknown}: no view of this name",
            path.display()
        );
        return ExitCode::from(2);
    }
    match rowcast::app::export(&config, request).await {
        Ok(manifest) => {
            for view in &manifest.views {
                println!(
                    "exported view {}: {} rows read, {} items, {} dead letters",
                    view.name, view.rows, view.items, view.dead_letters
                );
            }
            for table in &manifest.tables {
                println!(
                    "table {}: {} items in {} file(s)",
                    table.table,
                    table.items,
                    table.files.len()
                );
            }
            println!("position {} (seq {})", manifest.position, manifest.seq);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: export: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn seed_checkpoint(path: &Path, from: &str, s3_endpoint_url: Option<&str>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match rowcast::app::seed_checkpoint(&config, from, s3_endpoint_url).await {
        Ok(manifest) => {
            let views: Vec<&str> = manifest.views.iter().map(|v| v.name.as_str()).collect();
            println!(
                "checkpoint set at {} (seq {}), views {} filled",
                manifest.position,
                manifest.seq,
                views.join(", ")
            );
            if let Some(file) = &manifest.dead_letters {
                println!("the export's dead letters are in its {file} only (not in the dead-letter store)");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: checkpoint: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn suggest(request: &rowcast::suggest::SuggestRequest) -> ExitCode {
    match rowcast::suggest::suggest(request).await {
        Ok(done) => {
            for view in &done.plan.views {
                println!("view {}: {} / {}", view.name, view.pk, view.sk);
            }
            for (table, why) in &done.plan.left_out {
                println!("left out {table}: {why}");
            }
            for file in &done.files {
                println!("wrote {}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: suggest: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn scan(path: &Path, table: &str) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let client = rowcast::dynamo::client(&config.dynamodb).await;
    match rowcast::dynamo::tables::scan_plain(&client, table).await {
        Ok(items) => {
            for item in items {
                println!("{item}");
            }
            ExitCode::SUCCESS
        }
        Err(info) => {
            eprintln!("error: cannot scan {table}: {info}");
            ExitCode::FAILURE
        }
    }
}

async fn deadletters(action: DeadlettersAction) -> ExitCode {
    let (path, views, verb) = match action {
        DeadlettersAction::List { config, views } => (config, views, "list"),
        DeadlettersAction::Replay { config, views } => (config, views, "replay"),
        DeadlettersAction::Purge { config, views } => (config, views, "purge"),
    };
    let config = match load(&path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let known: Vec<String> = config.views.iter().map(|v| v.name.clone()).collect();
    if let Some(unknown) = views.iter().find(|v| !known.contains(v)) {
        eprintln!(
            "error: {}: --view {unknown}: no view of this name",
            path.display()
        );
        return ExitCode::from(2);
    }
    let views = if views.is_empty() { known } else { views };
    let client = rowcast::dynamo::client(&config.dynamodb).await;
    let store = rowcast::control::DeadLetterStore::from_config(&config, &client);
    let letters = match store.list(&views).await {
        Ok(letters) => letters,
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            return ExitCode::FAILURE;
        }
    };
    match verb {
        "list" => {
            for stored in &letters {
                println!("{}", stored.letter);
            }
            eprintln!("{} dead letter(s)", letters.len());
            ExitCode::SUCCESS
        }
        "purge" => {
            let at: Vec<_> = letters.iter().map(|s| s.at.clone()).collect();
            match store.remove(&at).await {
                Ok(()) => {
                    println!("purged {} dead letter(s)", at.len());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {}", chain(&error));
                    ExitCode::FAILURE
                }
            }
        }
        _ => match rowcast::control::letters::replay(
            &store,
            letters,
            &api(&config),
            &client,
            &item_places(&config),
        )
        .await
        {
            Ok(outcome) => {
                for (stored, why) in &outcome.kept {
                    eprintln!("kept: {}: {why}", stored.letter);
                }
                println!(
                    "replayed {} dead letter(s) through the daemon ({} for rows that no longer exist: their items removed); kept {}",
                    outcome.replayed,
                    outcome.gone,
                    outcome.kept.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn query(path: &Path, place: (&str, Option<&str>), pk: &str, page_size: i32) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (table, index) = place;
    let mut views = config.views.iter().filter(|v| *v.table == *table);
    // The partition key's attribute name, from the views writing to that table (or index).
    let pk_attribute = match index {
        None => views.next().map_or("pk", |v| &*v.key.pk_attribute),
        Some(index) => {
            let mut indexes = views.flat_map(|v| &v.indexes);
            match indexes.find(|i| i.name == index) {
                Some(found) => &*found.pk_attribute,
                None => {
                    eprintln!("error: no view declares index {index} of table {table}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let client = rowcast::dynamo::client(&config.dynamodb).await;
    let size = page_size.max(1);
    match rowcast::dynamo::tables::query_pages(&client, place, pk_attribute, pk, size).await {
        Ok(pages) => {
            for (n, page) in pages.iter().enumerate() {
                println!("# page {} ({} items)", n + 1, page.len());
                for item in page {
                    println!("{item}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(info) => {
            eprintln!("error: cannot query {table}: {info}");
            ExitCode::FAILURE
        }
    }
}

/// Each view's table and key attribute names.
fn item_places(
    config: &Config,
) -> std::collections::HashMap<String, rowcast::control::letters::ItemPlace> {
    config
        .views
        .iter()
        .map(|v| {
            let place = rowcast::control::letters::ItemPlace {
                table: v.table.to_string(),
                pk_attribute: v.key.pk_attribute.to_string(),
                sk_attribute: v.key.sk_attribute.as_deref().map(str::to_string),
            };
            (v.name.clone(), place)
        })
        .collect()
}

/// The daemon's API as `config` names it, for the commands that talk to it.
fn api(config: &Config) -> rowcast::util::http::Api {
    rowcast::util::http::Api {
        addr: config.api.listen,
        token: config.api.token.as_ref().map(|t| t.expose().to_string()),
    }
}

async fn snapshot(path: &Path, view: &str) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if !config.views.iter().any(|v| v.name == view) {
        eprintln!("error: {}: no view named {view:?}", path.display());
        return ExitCode::from(2);
    }
    let api = api(&config);
    let path = format!("/v1/views/{view}/snapshot");
    match rowcast::util::http::request(&api, "POST", &path, Duration::from_secs(30)).await {
        Ok((200 | 202, body)) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("error: the daemon refused ({status}): {body}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!(
                "error: cannot reach the daemon's API on {} (is `rowcast run` running?): {error}",
                api.addr
            );
            ExitCode::FAILURE
        }
    }
}

struct VerifyOutput {
    json: bool,
    show_values: bool,
}

fn item_json(item: Option<&rowcast::view::project::Item>) -> serde_json::Value {
    match item {
        Some(item) => serde_json::Value::Object(
            item.iter()
                .map(|(name, value)| (name.to_owned(), value.to_json()))
                .collect(),
        ),
        None => serde_json::Value::Null,
    }
}

fn print_difference(view: &str, d: &rowcast::verify::Difference, output: &VerifyOutput) {
    if output.json {
        let mut line = serde_json::json!({
            "view": view,
            "kind": d.kind.as_str(),
            "pk": d.key.pk,
            "sk": d.key.sk,
            "attributes": d.attributes,
        });
        if output.show_values {
            line["expected"] = item_json(d.expected.as_ref());
            line["actual"] = item_json(d.actual.as_ref());
        }
        println!("{line}");
        return;
    }
    let mut line = format!("DIFF {view} {} pk={}", d.kind.as_str(), d.key.pk);
    if let Some(sk) = &d.key.sk {
        line.push_str(&format!(" sk={sk}"));
    }
    if !d.attributes.is_empty() {
        line.push_str(&format!(" attributes={}", d.attributes.join(",")));
    }
    if output.show_values {
        line.push_str(&format!(
            " expected={} actual={}",
            item_json(d.expected.as_ref()),
            item_json(d.actual.as_ref())
        ));
    }
    println!("{line}");
}

/// Prints a view's summary line (and notes on stderr); returns the differences that remain and
/// whether the view could be verified at all.
fn print_summary(view: &str, summary: &rowcast::verify::Summary, repair: bool) -> (u64, bool) {
    if summary.not_filled {
        eprintln!(
            "note: {view}: being backfilled (or a backfill pass began while it was verified); not verified (run verify once the backfill is done)"
        );
        println!("{view}: not verified (backfill in progress)");
        return (0, false);
    }
    if summary.no_progress {
        eprintln!(
            "note: {view}: the daemon's checkpoint holds no progress of this view (no checkpoint where [checkpoint] says, another [pipeline] name, or a daemon that has not taken the view up yet); not verified"
        );
        println!("{view}: not verified (no checkpoint of it)");
        return (0, false);
    }
    if summary.json_key {
        eprintln!(
            "note: {view}: its key renders a JSON column, which SQL cannot look a row up by; not verified"
        );
        println!("{view}: not verified (a JSON column in the key)");
        return (0, false);
    }
    if summary.other_definition {
        eprintln!(
            "note: {view}: the daemon's checkpoint holds another definition of this view than this config's (a changed config not reloaded yet, or another pipeline's checkpoint); not verified"
        );
        println!("{view}: not verified (another definition)");
        return (0, false);
    }
    let mut line = format!(
        "{view}: {} checked, {} missing, {} extra, {} different",
        summary.checked, summary.missing, summary.extra, summary.different
    );
    if repair {
        line.push_str(&format!(", {} repaired", summary.repaired));
    }
    println!("{line}");
    if summary.not_repaired > 0 {
        eprintln!("note: {view}: {} difference(s) not repaired (a write-back view, a key that parses back in too many ways, or a repair that failed: see the log)", summary.not_repaired);
    }
    if summary.unwritable > 0 {
        eprintln!("note: {view}: {} key(s) whose row makes an item DynamoDB cannot take (over 400 KB, a value it cannot hold): not compared, not repaired; their dead letters say why", summary.unwritable);
    }
    if summary.unsettled > 0 {
        eprintln!("note: {view}: {} key(s) not compared: they kept changing through every check, the daemon's checkpoint did not pass the comparison point, or the key parses back into column values in too many ways to be looked up; run verify again", summary.unsettled);
    }
    if summary.writeback_behind {
        eprintln!("note: {view}: the daemon's write-back consumer had not read its stream up to a comparison point within --checkpoint-wait-s, so items that differ may hold application changes on their way to SQL and were not compared (is `rowcast run` running, its API reachable on [api] listen?)");
    }
    if summary.daemon_behind {
        eprintln!("note: {view}: the daemon's checkpoint did not reach a comparison point within --checkpoint-wait-s (is `rowcast run` running? a prepared XA transaction or a halted view holds it)");
    }
    let remaining = if repair {
        summary.remaining()
    } else {
        summary.missing + summary.extra + summary.different
    };
    // Keys not compared leave the view unproven: exit 0 says equal.
    (remaining, summary.complete())
}

async fn verify(
    path: &Path,
    names: &[String],
    repair: bool,
    mut options: rowcast::verify::Options,
    output: VerifyOutput,
) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let unknown: Vec<&String> = names
        .iter()
        .filter(|name| !config.views.iter().any(|v| &v.name == *name))
        .collect();
    if !unknown.is_empty() {
        for name in unknown {
            eprintln!(
                "error: {}: --view {name}: no view of this name",
                path.display()
            );
        }
        return ExitCode::from(2);
    }
    let pool = match rowcast::source::pool(&config.source.connection).await {
        Ok(pool) => pool,
        Err(error) => {
            // "1 any other error" (VIEWS.md): 3 is `check --connect`'s and `run`'s preflight.
            eprintln!("error: {}: source: {}", path.display(), chain(&error));
            return ExitCode::FAILURE;
        }
    };
    let client = rowcast::dynamo::client(&config.dynamodb).await;
    let checkpoint = rowcast::app::checkpoint_store(&config, &client);
    if repair {
        options.repair_via = Some(rowcast::verify::RepairVia::Http(api(&config)));
    }
    let progress = rowcast::verify::writeback::WritebackProgress::Api(api(&config));
    let services = rowcast::verify::Services {
        pool: &pool,
        client: &client,
        checkpoint: &checkpoint,
        views: &config.views,
        writeback: &progress,
    };
    let mut remaining = 0u64;
    let mut complete = true;
    for view in config
        .views
        .iter()
        .filter(|v| names.is_empty() || names.contains(&v.name))
    {
        let mut report = |d: &rowcast::verify::Difference| print_difference(&view.name, d, &output);
        let summary =
            match rowcast::verify::verify_view(&services, view, &options, &mut report).await {
                Ok(summary) => summary,
                Err(error) => {
                    eprintln!("error: verifying {}: {}", view.name, chain(&error));
                    pool.disconnect().await.ok();
                    return ExitCode::FAILURE;
                }
            };
        let (left, verified) = print_summary(&view.name, &summary, repair);
        remaining += left;
        complete &= verified;
    }
    pool.disconnect().await.ok();
    if remaining > 0 {
        ExitCode::from(4)
    } else if !complete {
        eprintln!("error: not every view could be verified (see the notes above)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
