//! Observability: [`Progress`], a live handle on a pipeline's counters, and the [`Report`] it
//! reads from them.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::channel::QueueStats;
use super::policy::Location;

/// The counters of one stage. Workers add to them once per batch (and once more when they stop
/// early), so a live report lags the truth by at most one batch per worker; once the pipeline's
/// future has completed every worker has stopped and the counts are exact.
///
/// All orderings are `Relaxed`: these are statistics, read without any other data depending on
/// them; completion of the pipeline (a join of every task) orders the final values before any
/// read that follows it.
#[derive(Debug)]
pub(crate) struct StageStats {
    pub(crate) name: Cow<'static, str>,
    pub(crate) workers: usize,
    pub(crate) items_in: AtomicU64,
    pub(crate) items_out: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    /// Items its workers held when they stopped early, dropped with their batch.
    pub(crate) unfinished: AtomicU64,
    pub(crate) busy_nanos: AtomicU64,
    pub(crate) starved_nanos: AtomicU64,
    pub(crate) throttled_nanos: AtomicU64,
    pub(crate) blocked_nanos: AtomicU64,
    /// The size of its input queue.
    pub(crate) capacity: usize,
    pub(crate) queue: Arc<QueueStats>,
    /// Where the item error that failed the run was, if it was this stage's.
    failure: OnceLock<Location>,
}

/// What one worker did with one batch, added to [`StageStats`] in one go.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) items_in: u64,
    pub(crate) items_out: u64,
    pub(crate) filtered: u64,
    pub(crate) errors: u64,
    pub(crate) retried: u64,
    pub(crate) timed_out: u64,
    pub(crate) skipped: u64,
    pub(crate) unfinished: u64,
    pub(crate) busy: Duration,
    /// Waiting for input.
    pub(crate) starved: Duration,
    /// Waiting for a token of the stage's rate limit.
    pub(crate) throttled: Duration,
    /// Waiting for room downstream.
    pub(crate) blocked: Duration,
}

impl StageStats {
    pub(crate) fn new(name: Cow<'static, str>, workers: usize, capacity: usize) -> StageStats {
        StageStats {
            name,
            workers,
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            unfinished: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            starved_nanos: AtomicU64::new(0),
            throttled_nanos: AtomicU64::new(0),
            blocked_nanos: AtomicU64::new(0),
            capacity,
            queue: Arc::default(),
            failure: OnceLock::new(),
        }
    }

    /// Records where the item error that failed the run was.
    pub(crate) fn failed_at(&self, at: Location) {
        let _ = self.failure.set(at);
    }

    /// Adds `tally` and resets it.
    pub(crate) fn add(&self, tally: &mut Tally) {
        let tally = std::mem::take(tally);
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                // Relaxed: a statistic (see the type's documentation).
                counter.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.items_in, tally.items_in);
        add(&self.items_out, tally.items_out);
        add(&self.filtered, tally.filtered);
        add(&self.errors, tally.errors);
        add(&self.retried, tally.retried);
        add(&self.timed_out, tally.timed_out);
        add(&self.skipped, tally.skipped);
        add(&self.unfinished, tally.unfinished);
        let nanos = |time: Duration| u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        add(&self.busy_nanos, nanos(tally.busy));
        add(&self.starved_nanos, nanos(tally.starved));
        add(&self.throttled_nanos, nanos(tally.throttled));
        add(&self.blocked_nanos, nanos(tally.blocked));
    }

    fn report(&self) -> StageReport {
        // Relaxed loads: statistics (see the type's documentation); a snapshot of independent
        // counters, not a consistent cut.
        StageReport {
            name: self.name.clone(),
            workers: self.workers,
            items_in: self.items_in.load(Ordering::Relaxed),
            items_out: self.items_out.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            unfinished: self.unfinished.load(Ordering::Relaxed)
                + self.queue.unfinished.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_nanos.load(Ordering::Relaxed)),
            starved: Duration::from_nanos(self.starved_nanos.load(Ordering::Relaxed)),
            throttled: Duration::from_nanos(self.throttled_nanos.load(Ordering::Relaxed)),
            blocked: Duration::from_nanos(self.blocked_nanos.load(Ordering::Relaxed)),
            capacity: self.capacity,
            queued: self.queue.queued.load(Ordering::Relaxed),
            peak_queue: self.queue.peak.load(Ordering::Relaxed),
        }
    }
}

/// The counters of one source.
#[derive(Debug, Default)]
pub(crate) struct SourceStats {
    pub(crate) produced: AtomicU64,
    /// Its input has ended.
    pub(crate) ended: AtomicBool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Stages in pipeline order; appended to while the pipeline is being built.
    pub(crate) stages: Mutex<Vec<Arc<StageStats>>>,
    /// The sources, in the order given; set when the run starts.
    pub(crate) sources: Mutex<Vec<Arc<SourceStats>>>,
    pub(crate) produced: AtomicU64,
    pub(crate) consumed: AtomicU64,
    pub(crate) sink_errors: AtomicU64,
    pub(crate) sink_queue: Arc<QueueStats>,
    /// Items the sink had taken but not consumed when it stopped early.
    pub(crate) sink_unfinished: AtomicU64,
    /// Set when a [`Drain`](crate::Drain) reached the run.
    pub(crate) drained: Mutex<Option<Drained>>,
}

impl Counters {
    /// Records how a drain of the run with `budget` stands.
    pub(crate) fn drained(&self, budget: Duration, outcome: DrainOutcome) {
        let mut drained = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
        *drained = Some(Drained { budget, outcome });
    }
}

/// How a [`Drain`](crate::Drain) went, in a [`Report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// The budget the drain was given (the shortest, if it was asked more than once).
    pub budget: Duration,
    /// Where it stands, or how it ended.
    pub outcome: DrainOutcome,
}

/// Where a drain stands, or how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DrainOutcome {
    /// The run is finishing what it took (a live report).
    Draining,
    /// Everything taken was finished within the budget: the run returned `Ok`.
    Completed,
    /// The budget ran out: the rest was cancelled with [`DrainTimeout`](crate::DrainTimeout).
    TimedOut,
    /// Something else ended the run first: an error, a panic or the caller's cancel.
    Stopped,
}

/// A live view of a running pipeline's counters: cheap to clone, `Send + Sync`, readable from
/// anywhere while the pipeline runs and after it has finished.
///
/// Get one with [`Pipeline::progress`](crate::Pipeline::progress) before starting the pipeline;
/// it sees every stage, including those added after it was taken.
///
/// # Examples
///
/// ```
/// use ctxpipe::{Context, Error, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let pipeline = Pipeline::new(&Context::background(), 1..=10)
///     .filter_map("odd", |_ctx, n: u32| async move { Ok(if n % 2 == 1 { Some(n) } else { None }) });
/// let progress = pipeline.progress();
/// let odd = pipeline.count().await?;
///
/// let report = progress.report();
/// assert_eq!(odd, 5);
/// assert_eq!((report.produced, report.consumed), (10, 5));
/// let stage = report.stage("odd").unwrap();
/// assert_eq!((stage.items_in, stage.items_out, stage.filtered), (10, 5, 5));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Progress {
    pub(crate) counters: Arc<Counters>,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            counters: Arc::default(),
        }
    }

    /// A snapshot of every counter. While the pipeline runs, each stage's counts lag by at most
    /// one batch per worker; after its future has completed they are exact.
    pub fn report(&self) -> Report {
        let counters = &*self.counters;
        let stats = counters
            .stages
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let stages: Vec<StageReport> = stats.iter().map(|stage| stage.report()).collect();
        let failure = stats.iter().find_map(|stage| stage.failure.get().cloned());
        drop(stats);
        let sources = counters
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|source| SourceReport {
                produced: source.produced.load(Ordering::Relaxed),
                ended: source.ended.load(Ordering::Relaxed),
            })
            .collect();
        let drained = *counters
            .drained
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Relaxed: statistics, as in `StageStats::report`.
        let sink_unfinished = counters.sink_unfinished.load(Ordering::Relaxed)
            + counters.sink_queue.unfinished.load(Ordering::Relaxed);
        Report {
            sources,
            unfinished: sink_unfinished + stages.iter().map(|stage| stage.unfinished).sum::<u64>(),
            drained,
            produced: counters.produced.load(Ordering::Relaxed),
            consumed: counters.consumed.load(Ordering::Relaxed),
            sink_errors: counters.sink_errors.load(Ordering::Relaxed),
            sink_peak_queue: counters.sink_queue.peak.load(Ordering::Relaxed),
            stages,
            failure,
        }
    }

    /// How many items the source has produced so far.
    pub fn produced(&self) -> u64 {
        // Relaxed: a statistic, as in `StageStats::report`.
        self.counters.produced.load(Ordering::Relaxed)
    }

    /// How many items the sink has been given so far.
    pub fn consumed(&self) -> u64 {
        // Relaxed: a statistic, as in `StageStats::report`.
        self.counters.consumed.load(Ordering::Relaxed)
    }

    pub(crate) fn add_stage(&self, stats: Arc<StageStats>) {
        self.counters
            .stages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stats);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        // Relaxed: a statistic, as in `StageStats::add`.
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress")
            .field("produced", &self.produced())
            .field("consumed", &self.consumed())
            .finish_non_exhaustive()
    }
}

/// What a pipeline did, stage by stage: a snapshot taken by [`Progress::report`].
///
/// It displays as a table:
///
/// ```
/// use ctxpipe::{Context, Error, Pipeline};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let pipeline = Pipeline::new(&Context::background(), 0..100u64)
///     .map("square", |_ctx, n| async move { Ok(n * n) });
/// let progress = pipeline.progress();
/// pipeline.count().await?;
/// println!("{}", progress.report());
/// assert_eq!(progress.report().errors(), 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Items the source has produced (taken from its iterator or stream); with several
    /// sources, all of them.
    pub produced: u64,
    /// Each source, in the order given (one unless [`Pipeline::merge`](crate::Pipeline::merge)
    /// was given several): what it produced and whether its input has ended. Empty before
    /// the run starts.
    pub sources: Vec<SourceReport>,
    /// Items the sink has been given.
    pub consumed: u64,
    /// Errors returned by the sink's function ([`Pipeline::try_for_each`](crate::Pipeline::try_for_each)).
    pub sink_errors: u64,
    /// The most items ever waiting in the sink's input queue.
    pub sink_peak_queue: usize,
    /// One entry per stage, in pipeline order.
    pub stages: Vec<StageReport>,
    /// Where the item whose error the run returned failed: its stage, its number and its
    /// attempt. `None` when the run did not fail on an item (it succeeded, was cancelled, or
    /// the sink failed).
    pub failure: Option<Location>,
    /// Items dropped unfinished because the run stopped early (a cancel, an error, a drain
    /// whose budget ran out): left in a queue, or held by a stage or the sink. Each counts
    /// where it was dropped, so behind a `flat_map` stage an item counts as what it expanded
    /// to. `0` after a run that finished its input.
    pub unfinished: u64,
    /// Set when a [`Drain`](crate::Drain) reached the run: its budget and whether it held.
    pub drained: Option<Drained>,
}

impl Report {
    /// The first stage called `name`, if any.
    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|stage| stage.name == name)
    }

    /// The errors the stages and the sink returned. The pipeline returns the first; the others
    /// were dropped, and are only counted here. An error returned once the pipeline's context
    /// is done counts as the call noticing the cancellation, not as an error of its own (so a
    /// call failing at the very moment another's error cancels the pipeline may go uncounted).
    pub fn errors(&self) -> u64 {
        self.stages.iter().map(|stage| stage.errors).sum::<u64>() + self.sink_errors
    }
}

/// Which step holds a pipeline back, and how plainly: see [`Report::bottleneck`].
///
/// Each share is a fraction (0 to 1) of the time a stage's workers were running: busy in
/// calls, *starved* waiting for input, or *blocked* waiting for room downstream.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Bottleneck {
    /// The source: the first stage is starved for `starved` of its time.
    Source {
        /// The first stage's share of time waiting for input.
        starved: f64,
    },
    /// A stage whose workers are busy (or throttled by its rate limit) for most of their
    /// time: more workers (if its calls wait on I/O or there are free cores), a faster
    /// function or a higher rate would speed the run up.
    Stage {
        /// The stage's name.
        name: Cow<'static, str>,
        /// Its workers' share of time busy in calls.
        busy: f64,
        /// Its workers' share of time waiting for the stage's rate limit.
        throttled: f64,
    },
    /// The sink: the last stage is blocked for `blocked` of its time.
    Sink {
        /// The last stage's share of time waiting for room in the sink's queue.
        blocked: f64,
    },
}

impl fmt::Display for Bottleneck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = |share: f64| (share * 100.0).round();
        match self {
            Bottleneck::Source { starved } => write!(
                f,
                "the source (the first stage waits for input {:.0}% of its time)",
                percent(*starved)
            ),
            Bottleneck::Stage {
                name,
                busy,
                throttled,
            } if *throttled > 0.0 => write!(
                f,
                "stage `{name}` (its workers are busy {:.0}% and throttled by its rate {:.0}% \
                 of their time)",
                percent(*busy),
                percent(*throttled)
            ),
            Bottleneck::Stage { name, busy, .. } => write!(
                f,
                "stage `{name}` (its workers are busy {:.0}% of their time)",
                percent(*busy)
            ),
            Bottleneck::Sink { blocked } => write!(
                f,
                "the sink (the last stage waits for room {:.0}% of its time)",
                percent(*blocked)
            ),
        }
    }
}

impl StageReport {
    /// `None` before any time was measured.
    /// (Busy or throttled, starved, blocked, throttled), each as a share of their sum.
    fn shares(&self) -> Option<(f64, f64, f64, f64)> {
        let total = (self.busy + self.throttled + self.starved + self.blocked).as_secs_f64();
        let share = |time: Duration| time.as_secs_f64() / total;
        (total > 0.0).then(|| {
            (
                share(self.busy + self.throttled),
                share(self.starved),
                share(self.blocked),
                share(self.throttled),
            )
        })
    }
}

impl Report {
    /// The step that holds the pipeline back: the stage whose workers are busy for the
    /// largest share of their time, unless the first stage waits for input (the source) or
    /// the last waits for room (the sink) for a larger share still. `None` without stages or
    /// before any stage has measured time. Live, from [`Progress::report`], it describes the
    /// run so far.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxpipe::{Bottleneck, Context, Error, Pipeline, StageOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Error> {
    /// let pipeline = Pipeline::new(&Context::background(), 0..100)
    ///     .map("parse", |_ctx, n: u32| async move { Ok(n) })
    ///     .map(StageOptions::new("fetch").workers(2), |_ctx, n| async move {
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///         Ok(n)
    ///     });
    /// let progress = pipeline.progress();
    /// pipeline.count().await?;
    /// let report = progress.report();
    /// assert!(matches!(report.bottleneck(), Some(Bottleneck::Stage { name, .. }) if name == "fetch"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn bottleneck(&self) -> Option<Bottleneck> {
        let (index, (busy, _, _, throttled)) = self
            .stages
            .iter()
            .enumerate()
            .filter_map(|(index, stage)| Some((index, stage.shares()?)))
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
        let starved = self
            .stages
            .first()
            .and_then(StageReport::shares)
            .map_or(0.0, |s| s.1);
        let blocked = self
            .stages
            .last()
            .and_then(StageReport::shares)
            .map_or(0.0, |s| s.2);
        Some(if starved > busy && starved >= blocked {
            Bottleneck::Source { starved }
        } else if blocked > busy {
            Bottleneck::Sink { blocked }
        } else {
            Bottleneck::Stage {
                name: self.stages[index].name.clone(),
                busy: busy - throttled,
                throttled,
            }
        })
    }
}

impl fmt::Display for Report {
    /// A table: one row per step, the policy columns (`retried`, `timed out`, `skipped`) only
    /// when a stage has one, and the failed item's location last if an item failed the run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .stages
            .iter()
            .map(|stage| stage.name.len())
            // "source", or "source N" for several.
            .chain([match self.sources.len() {
                0 | 1 => 6,
                n => format!("source {n}").len(),
            }])
            .max()
            .unwrap_or(6);
        let policies = self
            .stages
            .iter()
            .any(|stage| stage.retried + stage.timed_out + stage.skipped + stage.dead_lettered > 0);
        let throttling = self.stages.iter().any(|stage| !stage.throttled.is_zero());
        write!(
            f,
            "{:<width$} {:>7} {:>10} {:>10} {:>10} {:>7}",
            "stage", "workers", "in", "out", "filtered", "errors"
        )?;
        if policies {
            write!(
                f,
                " {:>8} {:>9} {:>8} {:>8}",
                "retried", "timed out", "skipped", "dead"
            )?;
        }
        write!(f, " {:>10} {:>10} {:>10}", "busy", "starved", "blocked")?;
        if throttling {
            write!(f, " {:>10}", "throttled")?;
        }
        writeln!(f, " {:>6}", "peak")?;
        match &self.sources[..] {
            [_, _, ..] => {
                for (n, source) in self.sources.iter().enumerate() {
                    let ended = if source.ended { "  (ended)" } else { "" };
                    let name = format!("source {}", n + 1);
                    writeln!(f, "{name:<width$} {:>7} {:>10}{ended}", "", source.produced)?;
                }
            }
            _ => writeln!(f, "{:<width$} {:>7} {:>10}", "source", "", self.produced)?,
        }
        for stage in &self.stages {
            write!(
                f,
                "{:<width$} {:>7} {:>10} {:>10} {:>10} {:>7}",
                stage.name,
                stage.workers,
                stage.items_in,
                stage.items_out,
                stage.filtered,
                stage.errors,
            )?;
            if policies {
                write!(
                    f,
                    " {:>8} {:>9} {:>8} {:>8}",
                    stage.retried, stage.timed_out, stage.skipped, stage.dead_lettered
                )?;
            }
            let time = |time: Duration| format!("{time:.1?}");
            write!(
                f,
                " {:>10} {:>10} {:>10}",
                time(stage.busy),
                time(stage.starved),
                time(stage.blocked),
            )?;
            if throttling {
                write!(f, " {:>10}", time(stage.throttled))?;
            }
            writeln!(f, " {:>6}", stage.peak_queue)?;
        }
        write!(
            f,
            "{:<width$} {:>7} {:>10} {:>10} {:>10} {:>7}",
            "sink", "", self.consumed, "", "", self.sink_errors
        )?;
        if policies {
            write!(f, " {:>8} {:>9} {:>8} {:>8}", "", "", "", "")?;
        }
        write!(f, " {:>10} {:>10} {:>10}", "", "", "")?;
        if throttling {
            write!(f, " {:>10}", "")?;
        }
        write!(f, " {:>6}", self.sink_peak_queue)?;
        if let Some(failure) = &self.failure {
            write!(f, "\nfailed at {failure}")?;
        }
        if let Some(Drained { budget, outcome }) = self.drained {
            match outcome {
                DrainOutcome::Draining => write!(f, "\ndraining, with a budget of {budget:?}")?,
                DrainOutcome::Completed => write!(f, "\ndrained within its budget of {budget:?}")?,
                DrainOutcome::TimedOut => write!(f, "\ndrain ran out of its budget of {budget:?}")?,
                _ => write!(
                    f,
                    "\ndrain (budget {budget:?}) cut short: the run stopped first"
                )?,
            }
        }
        if self.unfinished > 0 {
            write!(f, "\n{} items dropped unfinished", self.unfinished)?;
        }
        if let Some(bottleneck) = self.bottleneck() {
            write!(f, "\nbottleneck: {bottleneck}")?;
        }
        Ok(())
    }
}

/// What one source of a pipeline did; part of a [`Report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceReport {
    /// Items it produced.
    pub produced: u64,
    /// Its input has ended (not when it was stopped by a cancel or a drain).
    pub ended: bool,
}

/// What one stage did; part of a [`Report`].
///
/// ```
/// use ctxpipe::{Context, Error, Pipeline, StageOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let pipeline = Pipeline::new(&Context::background(), ["1", "2", "x"]).filter_map(
///     StageOptions::new("parse").workers(2),
///     |_ctx, s: &str| async move { Ok(s.parse::<u32>().ok()) },
/// );
/// let progress = pipeline.progress();
/// pipeline.count().await?;
///
/// let parse = progress.report().stages.remove(0);
/// assert_eq!(parse.name, "parse");
/// assert_eq!(parse.workers, 2);
/// assert_eq!((parse.items_in, parse.items_out, parse.filtered), (3, 2, 1));
/// assert_eq!((parse.errors, parse.queued), (0, 0));
/// assert!(parse.peak_queue >= 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage's name, from its [`StageOptions`](crate::StageOptions).
    pub name: Cow<'static, str>,
    /// How many workers it ran.
    pub workers: usize,
    /// Items the stage function was called with.
    pub items_in: u64,
    /// Items the stage produced: one per `Ok` of a map, one per `Ok(Some(_))` of a filter, every
    /// item of a flat stage's `Ok(iter)`.
    pub items_out: u64,
    /// Items a filter stage dropped (`Ok(None)`).
    pub filtered: u64,
    /// Items that failed: their call (the last attempt, with retries) returned `Err` or ran
    /// out of time while the run was going on. Calls cut short by the run's cancellation are
    /// not counted, whether they were dropped or returned the cancellation as their error (as
    /// a `#[stage]` checkpoint does).
    pub errors: u64,
    /// Attempts made again after a failed one ([`StageOptions::retry`](crate::StageOptions::retry)).
    pub retried: u64,
    /// Attempts that ran out of the stage's [`timeout`](crate::StageOptions::timeout).
    pub timed_out: u64,
    /// Failed items dropped by [`OnError::Skip`](crate::OnError::Skip); the run went on.
    pub skipped: u64,
    /// Failed items that the stage's dead-letter sink took
    /// ([`StageOptions::dead_letter`](crate::StageOptions::dead_letter)); the run went on.
    pub dead_lettered: u64,
    /// Time the workers spent on batches of items, summed over workers (so it may exceed the
    /// wall time with several workers); waiting for input or for room downstream is not
    /// included. Measured on tokio's clock, so paused time in tests advances it too.
    pub busy: Duration,
    /// Time the workers waited for input, summed over workers: the stage was *starved*, and
    /// what feeds it is slower than it.
    pub starved: Duration,
    /// Time the workers waited for room downstream, summed over workers: the stage was
    /// *blocked*, and what it feeds is slower than it. (An ordered stage's wait for room in its
    /// reorder window is neither: the items it waits for are still being worked on.)
    pub blocked: Duration,
    /// Time the workers waited for their [`rate`](crate::StageOptions::rate) limit, summed over
    /// workers. A rate-limited stage that is the bottleneck is held back by its limit.
    pub throttled: Duration,
    /// The size of its input queue: with [`queued`](Self::queued), how full it is.
    pub capacity: usize,
    /// Items dropped unfinished in this stage when the run stopped early: left in its input
    /// queue or held by its workers (see [`Report::unfinished`]).
    pub unfinished: u64,
    /// Items waiting in the stage's input queue when the snapshot was taken.
    pub queued: usize,
    /// The most items that ever waited in the stage's input queue.
    pub peak_queue: usize,
}
