//! Scans a directory tree concurrently and reports its lines of code, comments and TODOs per
//! language, its largest files and what each stage of the scan did.
//!
//! ```text
//! cargo run --release --example scan                      # this repository
//! cargo run --release --example scan -- ~/src/tokio --top 5
//! cargo run --release --example scan -- /usr --timeout 50ms   # a partial report
//! cargo run --release --example scan -- --help
//! ```
//!
//! The scan is one pipeline under one context:
//!
//! ```text
//!   walk  ──▶  read  ──▶  analyse  ──▶  summary
//!   source     16 workers  1 per core    sink
//!   (std::fs   tokio::fs   CPU: lines,   per language,
//!   on a       reads       drops binary  largest files
//!   blocking   files       files         ...
//!   thread)
//! ```
//!
//! - The context carries the [`ScanConfig`], a `#[ctx_value]` that the walk and the `read`
//!   stage take from it by type.
//! - `--timeout TIME` (such as `50ms`, `2s`, `1.5m`, `1h`, or `3` seconds) puts a deadline on
//!   that context: every stage stops at its next checkpoint, and the scan prints what the sink
//!   had aggregated so far, says why it stopped (`context deadline exceeded`) and exits with
//!   124.
//! - The first Ctrl-C *drains* the scan (`drained_by = ..`): the walk stops, and the files
//!   already taken are read and analysed, within 2 s; the report says `drained` and is
//!   partial only in the files never taken. A second Ctrl-C, or a drain that runs out of its
//!   2 s, cancels the rest at once (`context canceled: interrupted by Ctrl-C`, or the drain's
//!   timeout). Either way the scan exits with 130.
//! - Files under `PATH` that cannot be read are counted and listed, never fatal: the `read`
//!   stage returns an error for them, and its error policy hands each one to a dead-letter
//!   sink (`on_error = dead_letter(..)`) that keeps it for the report. Directories that cannot
//!   be listed are counted and listed too. `PATH` itself is checked before the scan starts.
//! - While it runs, a progress bar on stderr (when stderr is a terminal) follows the
//!   pipeline's counters: the files read and found so far while the walk goes on, then, once
//!   the walk has been through the whole tree and the total is known, a bar with the
//!   percentage read. At the end, the pipeline's own report shows each stage's work.
//!
//! Exit status: 0 when the scan is complete, 1 on an error (such as a `PATH` that does not
//! exist, cannot be listed or cannot be read, or a report that cannot be written), 2 on
//! invalid arguments, 124 when `--timeout` expired, 130 on Ctrl-C. A reader that closes the
//! output early (`| head`) ends the report quietly, with the scan's own status.

mod analysis;
mod args;
mod bar;
mod summary;
mod walk;

use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ctxpipe::{
    ctx_value, pipeline, stage, CancelHandle, Cause, Context, Drain, DrainOutcome, Error,
    ItemError, Progress, Report,
};
use tokio::io::AsyncReadExt;

use crate::analysis::FileStats;
use crate::args::{Args, Command};
use crate::summary::{human_bytes, Summary};

/// Concurrent reads: enough to keep a disk busy; reading is waiting, not computing.
const READ_WORKERS: usize = 16;

/// Files larger than this are not read.
const MAX_BYTES: u64 = 8 << 20;

/// Directories never entered, at any depth.
const IGNORED: [&str; 2] = [".git", "target"];

/// The scan's settings, put in its context and taken from there by type.
#[ctx_value]
#[derive(Debug)]
struct ScanConfig {
    /// The directory (or file) to scan.
    root: PathBuf,
    /// Files larger than this are skipped, not read.
    max_bytes: u64,
    /// Names of directories the walk does not enter.
    ignore: Vec<OsString>,
}

impl ScanConfig {
    /// The defaults, for the tree at `root`.
    fn new(root: PathBuf) -> ScanConfig {
        ScanConfig {
            root,
            max_bytes: MAX_BYTES,
            ignore: IGNORED.iter().map(OsString::from).collect(),
        }
    }
}

/// A file's contents, read by the `read` stage.
struct Loaded {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// What reaches the sink's summary: a text file's analysis, or a path the scan had to skip.
/// Binary files never get here (the `analyse` stage filters them out), and skipped paths are
/// added once the pipeline is over, from the walk and from the `read` stage's dead letters.
enum Outcome {
    Text(FileStats),
    Skipped(Skipped),
}

/// The pipeline's error: the scan stopped (cancelled, or out of time), or a file was not read,
/// which the `read` stage's error policy turns into an entry of the report.
#[derive(Debug)]
enum ScanError {
    Stopped(Error),
    Skip(Reason),
}

impl From<Error> for ScanError {
    fn from(err: Error) -> ScanError {
        ScanError::Stopped(err)
    }
}

impl From<Reason> for ScanError {
    fn from(reason: Reason) -> ScanError {
        ScanError::Skip(reason)
    }
}

impl From<io::Error> for ScanError {
    fn from(err: io::Error) -> ScanError {
        ScanError::Skip(Reason::Unreadable(err))
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Stopped(err) => write!(f, "{err}"),
            ScanError::Skip(reason) => write!(f, "{reason}"),
        }
    }
}

/// The files the `read` stage could not read, handed over by its dead-letter sink.
#[derive(Clone, Default)]
struct DeadLetters(Arc<Mutex<Vec<Skipped>>>);

impl DeadLetters {
    /// The sink: keeps the path and why it was not read.
    fn sink(
        &self,
    ) -> impl FnMut(PathBuf, ItemError<ScanError>) -> Ready<Result<(), ScanError>> + Send + 'static
    {
        let letters = self.0.clone();
        move |path, err| {
            let reason = match err.into_error() {
                ScanError::Skip(reason) => reason,
                // Not an item's error: a stopping run is not handed to the sink.
                ScanError::Stopped(err) => Reason::Unreadable(err.into()),
            };
            letters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Skipped { path, reason });
            ready(Ok(()))
        }
    }

    /// What the sink kept, in the order it came.
    fn take(&self) -> Vec<Skipped> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A path the scan did not analyse, and why.
#[derive(Debug)]
struct Skipped {
    path: PathBuf,
    reason: Reason,
}

/// Why a path was skipped.
#[derive(Debug)]
enum Reason {
    /// Larger than [`ScanConfig::max_bytes`]: its size.
    TooLarge(u64),
    /// Opening, reading or listing it failed.
    Unreadable(io::Error),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TooLarge(len) => write!(f, "too large to read ({})", human_bytes(*len)),
            Reason::Unreadable(err) => write!(f, "{err}"),
        }
    }
}

impl From<io::Error> for Reason {
    fn from(err: io::Error) -> Reason {
        Reason::Unreadable(err)
    }
}

/// Reads a file found by the walk, unless it is larger than the configured maximum, and adds
/// its size to `bytes_read` (for the progress bar). An error is not the scan's: the stage's
/// policy hands the file to the report (see [`DeadLetters`]).
#[stage]
async fn read(
    path: PathBuf,
    #[ctx_value] config: &ScanConfig,
    bytes_read: Arc<AtomicU64>,
) -> Result<Loaded, ScanError> {
    let file = tokio::fs::File::open(&path).await?;
    let len = file.metadata().await?.len();
    if len > config.max_bytes {
        return Err(Reason::TooLarge(len).into());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `take`: a file that grew since `metadata` is still read only up to the maximum. A
    // checkpoint, as every await: when the scan is cancelled, the read is dropped midway.
    file.take(config.max_bytes).read_to_end(&mut bytes).await?;
    // Relaxed: a statistic, only shown.
    bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(Loaded { path, bytes })
}

/// Analyses a file's contents: `None` (filtered out) for a binary file.
#[stage]
async fn analyse(loaded: Loaded) -> Result<Option<FileStats>, Error> {
    Ok(FileStats::of(loaded.path, &loaded.bytes))
}

/// Parses the command line and runs the scan on a tokio runtime built by hand rather than with
/// `#[tokio::main]`, so that it can be shut down without waiting for reads the scan abandoned.
fn main() -> ExitCode {
    let args = match Command::parse(std::env::args_os().skip(1)) {
        Ok(Command::Scan(args)) => args,
        Ok(Command::Help) => {
            // A closed output (`scan --help | head -1`) is not an error worth reporting.
            let _ = write!(io::stdout(), "{}", args::usage());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("scan: {message}\n(see `scan --help`)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("scan: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(scan(args)).unwrap_or_else(|message| {
        eprintln!("scan: {message}");
        ExitCode::FAILURE
    });
    // Every task of the scan has ended. A file read that the scan abandoned may still block its
    // thread in the kernel (a `/proc` or device file never ends): do not wait for it.
    runtime.shutdown_background();
    status
}

/// Runs the scan that `args` describe, prints its report and returns the exit status.
async fn scan(args: Args) -> Result<ExitCode, String> {
    check_root(&args.path)?;
    let with_config = Context::background().with_value(ScanConfig::new(args.path.clone()));
    let (ctx, cancel) = match args.timeout {
        Some(timeout) => with_config.with_timeout(timeout),
        None => with_config.with_cancel(),
    };
    let handles = Handles::default();
    let interrupt = tokio::spawn(on_ctrl_c(handles.drain.clone(), cancel));
    let started = Instant::now();

    let (files, walk) = walk::spawn(&ctx);
    let found = walk.found();
    let mut summary = Summary::new(&args.path, args.top);
    let mut progress = None;
    let run = scan_pipeline(
        &ctx,
        files,
        args.workers,
        &mut summary,
        &handles,
        |handle| {
            progress = Some(handle);
        },
    );
    let progress = progress.expect("`pipeline!` hands over its progress when it is built");
    let stopped = bar::while_running(&progress, &found, &handles.bytes_read, run)
        .await
        .err();
    let elapsed = started.elapsed();
    interrupt.abort();

    let walked = walk.join().await?;
    let directories = walked.directories;
    let report = progress.report();
    summary.set_binary(binary_files(&report));
    for skipped in walked.unlisted.into_iter().chain(handles.skipped.take()) {
        summary.add(Outcome::Skipped(skipped));
    }
    let drained = report
        .drained
        .is_some_and(|drained| drained.outcome == DrainOutcome::Completed);
    let status = match &stopped {
        None if drained => format!(
            "PARTIAL, drained after {elapsed:.1?}: interrupted by Ctrl-C, every file taken \
             was finished"
        ),
        None => format!("complete in {elapsed:.1?}"),
        Some(err) => format!(
            "PARTIAL, stopped after {elapsed:.1?}: {}",
            reason(err, &ctx)
        ),
    };
    let mut out = io::stdout().lock();
    let printed = print_report(
        &mut out,
        &args.path,
        &status,
        directories,
        &summary,
        &report,
    )
    .and_then(|()| match &stopped {
        Some(err) => writeln!(
            out,
            "\nstopped: {}; the report above is partial",
            reason(err, &ctx)
        ),
        None => Ok(()),
    })
    .and_then(|()| out.flush());
    match printed {
        // The reader went away (`| head`): what it read is what it wanted.
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the report: {err}"))
        }
        _ if drained => Ok(ExitCode::from(INTERRUPTED)),
        _ => Ok(exit_code(stopped.as_ref())),
    }
}

/// Fails unless `root` is a directory that can be listed, or a file that can be opened: the
/// scan of an unreadable root would report nothing as if it were complete, and a FIFO would
/// never end.
fn check_root(root: &Path) -> Result<(), String> {
    let failed = |err: io::Error| format!("{}: {err}", root.display());
    let metadata = std::fs::metadata(root).map_err(failed)?;
    if metadata.is_dir() {
        std::fs::read_dir(root).map_err(failed)?;
    } else if metadata.is_file() {
        // Only once it is known to be a regular file: opening a FIFO waits for a writer.
        std::fs::File::open(root).map_err(failed)?;
    } else {
        return Err(format!(
            "{}: not a directory or a regular file",
            root.display()
        ));
    }
    Ok(())
}

/// What the scan and its pipeline share besides the summary.
#[derive(Clone, Default)]
struct Handles {
    /// The files that could not be read, with why.
    skipped: DeadLetters,
    /// The bytes the `read` stage read.
    bytes_read: Arc<AtomicU64>,
    /// Stops the walk and lets the files already taken finish (the first Ctrl-C).
    drain: Drain,
}

/// The scan as one pipeline under `ctx`: the `files` the walk finds are read, then analysed
/// by `workers` workers at once, and each text file's analysis is added to `summary`; the
/// files that cannot be read go to `handles.skipped`, the bytes read are counted in
/// `handles.bytes_read`, and `handles.drain` can stop it gracefully. `on_progress` receives
/// the pipeline's progress handle at once, before anything runs.
fn scan_pipeline<'a>(
    ctx: &Context,
    files: walk::Files,
    workers: usize,
    summary: &'a mut Summary,
    handles: &Handles,
    on_progress: impl FnOnce(Progress),
) -> impl Future<Output = Result<(), ScanError>> + 'a {
    let bytes_read = handles.bytes_read.clone();
    pipeline! {
        in ctx;
        progress = on_progress;
        drained_by = handles.drain;
        from stream files
        => read(bytes_read) [workers = READ_WORKERS, on_error = dead_letter(handles.skipped.sink())]
        => analyse [filter, workers = workers]
        => for_each(|file| summary.add(Outcome::Text(file)))
    }
}

/// How many files the `analyse` stage filtered out as binary.
fn binary_files(report: &Report) -> u64 {
    report.stage("analyse").map_or(0, |stage| stage.filtered)
}

/// Writes the report: the status line, the summary's tables and the pipeline's stages.
fn print_report(
    out: &mut impl Write,
    root: &Path,
    status: &str,
    directories: u64,
    summary: &Summary,
    report: &Report,
) -> io::Result<()> {
    let totals = summary.totals();
    writeln!(out, "scan of {}: {status}", root.display())?;
    let files = plural(totals.files, "text file", "text files");
    // A scan of one file has no directory to speak of.
    let place = match directories {
        0 => String::new(),
        n => format!(" in {}", plural(n, "directory", "directories")),
    };
    writeln!(
        out,
        "{files}{place}: {}, {}\n",
        plural(totals.lines, "line", "lines"),
        human_bytes(totals.bytes),
    )?;
    writeln!(out, "{summary}")?;
    writeln!(out, "pipeline\n{report}")?;
    writeln!(
        out,
        "(busy: time in the stage's calls, summed over its workers; starved: waiting for \
         input; blocked: waiting for room downstream; peak: the most items waiting in its \
         input queue at once)"
    )
}

/// `n` and the noun, singular or plural as `n` wants.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How long the files already taken get to finish after the first Ctrl-C.
const DRAIN_BUDGET: Duration = Duration::from_secs(2);

/// The exit status of a scan interrupted by Ctrl-C, as a shell reports SIGINT.
const INTERRUPTED: u8 = 130;

/// The first Ctrl-C drains the scan: the walk stops and the files already taken are finished,
/// within [`DRAIN_BUDGET`]. The second cancels it at once, with a cause that says so.
async fn on_ctrl_c(drain: Drain, cancel: CancelHandle) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    drain.drain(DRAIN_BUDGET);
    eprintln!(
        "\nscan: draining: finishing the files already taken (at most {DRAIN_BUDGET:?}); \
         Ctrl-C again to stop now"
    );
    if tokio::signal::ctrl_c().await.is_ok() {
        cancel.cancel_with(Cause::msg("interrupted by Ctrl-C"));
    }
}

/// Why the scan stopped: the error, and the context's cause when it says more.
fn reason(err: &ScanError, ctx: &Context) -> String {
    match ctx.cause().map(|cause| cause.to_string()) {
        Some(cause) if cause != err.to_string() => format!("{err}: {cause}"),
        _ => err.to_string(),
    }
}

/// 0 when the scan completed, 124 on its deadline (as `timeout(1)`), 130 on Ctrl-C (as a
/// shell reports SIGINT), 1 otherwise.
fn exit_code(stopped: Option<&ScanError>) -> ExitCode {
    match stopped {
        None => ExitCode::SUCCESS,
        Some(ScanError::Stopped(Error::DeadlineExceeded)) => ExitCode::from(124),
        Some(ScanError::Stopped(Error::Canceled | Error::DrainTimeout)) => {
            ExitCode::from(INTERRUPTED)
        }
        Some(_) => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory tree under the system's temporary directory, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(name: &str, files: &[(&str, &[u8])]) -> Tree {
            let root = std::env::temp_dir().join(format!("scan-{name}-{}", std::process::id()));
            for (path, contents) in files {
                let path = root.join(path);
                std::fs::create_dir_all(path.parent().expect("a file in a directory")).unwrap();
                std::fs::write(path, contents).unwrap();
            }
            Tree(root)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What a scan under test did.
    struct Scanned {
        result: Result<(), ScanError>,
        summary: Summary,
        report: Report,
        directories: u64,
        /// The walk's count of files, if it went through the whole tree.
        found: Option<u64>,
        bytes_read: u64,
    }

    /// Scans the root of the [`ScanConfig`] in `ctx`, under `ctx`.
    async fn scan_under(ctx: &Context) -> Scanned {
        scan_with(ctx, Handles::default()).await
    }

    /// [`scan_under`] with these `handles`.
    async fn scan_with(ctx: &Context, handles: Handles) -> Scanned {
        let root = ScanConfig::from_ctx(ctx).unwrap().root.clone();
        let (files, walk) = walk::spawn(ctx);
        let found = walk.found();
        let mut summary = Summary::new(&root, 10);
        let mut progress = None;
        let result = scan_pipeline(ctx, files, 2, &mut summary, &handles, |handle| {
            progress = Some(handle)
        })
        .await;
        let progress = progress.unwrap();
        let walked = walk.join().await.unwrap();
        let report = progress.report();
        summary.set_binary(binary_files(&report));
        for skipped in walked.unlisted.into_iter().chain(handles.skipped.take()) {
            summary.add(Outcome::Skipped(skipped));
        }
        Scanned {
            result,
            summary,
            report,
            directories: walked.directories,
            found: found.total(),
            bytes_read: handles.bytes_read.load(Ordering::Relaxed),
        }
    }

    fn small_files(root: PathBuf) -> ScanConfig {
        ScanConfig {
            max_bytes: 64,
            ..ScanConfig::new(root)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scans_text_skips_binary_large_and_ignored() {
        let tree = Tree::new(
            "whole",
            &[
                ("main.rs", b"fn main() {}\n// TODO\n\n"),
                ("docs/guide.md", b"# Guide\n"),
                ("docs/logo.png", b"\x89PNG\r\n\x1a\n\0\0"),
                ("big.txt", &[b'x'; 100]),
                (".git/HEAD", b"ref: refs/heads/main\n"),
                ("sub/target/debug.rs", b"fn skipped() {}\n"),
            ],
        );
        let ctx = Context::background().with_value(small_files(tree.0.clone()));
        let Scanned {
            result,
            summary,
            report,
            directories,
            found,
            bytes_read,
        } = scan_under(&ctx).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            directories, 3,
            "the root, docs and sub; not .git nor target"
        );
        assert_eq!(found, Some(4), "every file the walk sends, big.txt too");
        assert_eq!(bytes_read, 22 + 8 + 10, "main.rs, guide.md and logo.png");

        let totals = summary.totals();
        assert_eq!((totals.files, totals.lines, totals.code), (2, 4, 2));
        assert_eq!((totals.comment, totals.blank, totals.todos), (1, 1, 1));
        let text = summary.to_string();
        assert!(
            text.contains("skipped: 1 binary, 1 too large, 0 unreadable"),
            "{text}"
        );
        assert!(
            text.contains("  big.txt: too large to read (100 B)"),
            "{text}"
        );

        // big.txt went to the dead-letter sink, logo.png was filtered out.
        assert_eq!((report.produced, report.consumed), (4, 2));
        let read = report.stage("read").unwrap();
        assert_eq!((read.errors, read.dead_lettered), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_scan_stops_with_its_error() {
        let tree = Tree::new("cancelled", &[("a.rs", b"fn a() {}\n")]);
        let (ctx, cancel) = Context::background()
            .with_value(small_files(tree.0.clone()))
            .with_cancel();
        cancel.cancel_with(Cause::msg("interrupted by Ctrl-C"));
        let Scanned {
            result,
            summary,
            found,
            ..
        } = scan_under(&ctx).await;
        assert!(
            matches!(result, Err(ScanError::Stopped(Error::Canceled))),
            "{result:?}"
        );
        assert_eq!(found, None, "a walk that stopped early knows no total");
        assert_eq!(exit_code(result.err().as_ref()), ExitCode::from(130));
        assert_eq!(summary.totals().files, 0);
        assert_eq!(
            reason(&ScanError::Stopped(Error::Canceled), &ctx),
            "context canceled: interrupted by Ctrl-C"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drained_scan_is_partial_but_not_an_error() {
        let tree = Tree::new("drained", &[("a.rs", b"fn a() {}\n")]);
        let ctx = Context::background().with_value(small_files(tree.0.clone()));
        let handles = Handles::default();
        // Drained before it starts: it takes nothing, and says so.
        handles.drain.drain(DRAIN_BUDGET);
        let Scanned {
            result,
            summary,
            report,
            ..
        } = scan_with(&ctx, handles).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(summary.totals().files, 0);
        let drained = report.drained.expect("the report says it was drained");
        assert_eq!(drained.outcome, DrainOutcome::Completed);
        assert_eq!(drained.budget, DRAIN_BUDGET);
        assert_eq!(
            exit_code(Some(&ScanError::Stopped(Error::DrainTimeout))),
            ExitCode::from(INTERRUPTED)
        );
    }

    #[test]
    fn a_root_must_be_a_readable_file_or_a_listable_directory() {
        let tree = Tree::new("root", &[("a.rs", b"fn a() {}\n")]);
        assert_eq!(check_root(&tree.0), Ok(()));
        assert_eq!(check_root(&tree.0.join("a.rs")), Ok(()));
        let missing = check_root(&tree.0.join("missing.rs")).unwrap_err();
        assert!(missing.ends_with("missing.rs: No such file or directory (os error 2)"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = tree.0.join("a.rs");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
            // Root (and CAP_DAC_OVERRIDE) reads it anyway: then there is no error to see.
            if std::fs::File::open(&file).is_err() {
                let denied = check_root(&file).unwrap_err();
                assert!(denied.ends_with("a.rs: Permission denied (os error 13)"));
            }
            let device = check_root(Path::new("/dev/null")).unwrap_err();
            assert!(device.ends_with("not a directory or a regular file"));
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(None), ExitCode::SUCCESS);
        let stopped = |err| Some(ScanError::Stopped(err));
        assert_eq!(
            exit_code(stopped(Error::DeadlineExceeded).as_ref()),
            ExitCode::from(124)
        );
        assert_eq!(
            exit_code(stopped(Error::Canceled).as_ref()),
            ExitCode::from(130)
        );
        assert_eq!(
            exit_code(Some(&ScanError::Skip(Reason::TooLarge(1)))),
            ExitCode::FAILURE
        );
    }
}
