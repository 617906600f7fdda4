//! Graceful stop: [`Drain`], the handle that stops a pipeline's source and lets what is in
//! flight finish within a budget, and the per-run state it acts on.
//!
//! A drain acts on two things of each run it is attached to: the source's own context, which
//! it cancels so that the source stops taking items and ends its output as if its input had
//! ended (everything downstream then finishes the usual way), and a timer in the run's future
//! that cancels the pipeline's context with [`DrainTimeout`] once the budget is spent.

use std::convert::Infallible;
use std::fmt;
use std::future::pending;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::report::{Counters, DrainOutcome};
use crate::context::{CancelHandle, Context};

/// A handle that drains pipelines: stops their sources, lets every item already taken finish
/// through every stage and the sink within a budget, then cancels the rest.
///
/// Make one with [`Drain::new`], attach it to a pipeline before running it
/// ([`Pipeline::drained_by`](crate::Pipeline::drained_by), or `drained_by = handle;` in
/// `pipeline!`), and call [`drain`](Drain::drain) from anywhere — a signal handler, a shutdown
/// hook. It is cheap to clone, `Send` and `Sync`; one handle may drain several pipelines, and
/// a pipeline that starts after the drain takes nothing from its source.
///
/// What the run returns:
///
/// - the drain completed within the budget: `Ok`, with what the items that made it through
///   produced (the sink saw the source's end);
/// - the budget ran out: the pipeline's context is cancelled with a [`DrainTimeout`] cause
///   (stages see it through [`Context::cause`](crate::Context::cause)), the rest is dropped,
///   and the run returns [`Error::DrainTimeout`](crate::Error::DrainTimeout) converted into
///   the pipeline's error type;
/// - an error, a panic or the caller's cancel that came first still wins, as without a drain.
///
/// Either way the [`Report`](crate::Report) says that the run was drained, whether the budget
/// held, and how many items were dropped unfinished.
///
/// ```
/// use std::time::Duration;
/// use ctxpipe::{Context, Drain, DrainOutcome, Error, Pipeline, StageOptions};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Error> {
/// let drain = Drain::new();
/// let pipeline = Pipeline::new(&Context::background(), 0..)
///     .map(StageOptions::new("slow").workers(4).buffer(8), |_ctx, n: u64| async move {
///         tokio::time::sleep(Duration::from_millis(10)).await;
///         Ok(n)
///     })
///     .drained_by(&drain);
/// let progress = pipeline.progress();
/// let stopper = tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_millis(55)).await;
///     drain.drain(Duration::from_secs(1));
/// });
/// // An endless source, stopped by the drain: the run ends with what was in flight.
/// let seen = pipeline.count().await?;
/// stopper.await.unwrap();
/// let report = progress.report();
/// assert_eq!(seen as u64, report.produced);
/// assert_eq!(report.unfinished, 0);
/// assert_eq!(report.drained.unwrap().outcome, DrainOutcome::Completed);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Drain {
    shared: Arc<Mutex<Requests>>,
}

/// A drain's request and the runs it reaches.
#[derive(Default)]
struct Requests {
    /// Set by the first [`Drain::drain`]: when it was asked and with what budget; a later call
    /// with an earlier end moves it.
    requested: Option<Request>,
    /// Runs attached and not yet over (dead entries are pruned as runs register).
    runs: Vec<Weak<RunDrain>>,
}

#[derive(Clone, Copy)]
struct Request {
    budget: Duration,
    end: Instant,
}

impl Drain {
    /// A handle not attached to any pipeline yet.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Drains every pipeline this handle is attached to: their sources stop taking items now,
    /// and whatever is still unfinished when `budget` has passed is cancelled with a
    /// [`DrainTimeout`] cause. Returns at once; each run's future resolves when its drain is
    /// over. A pipeline with nothing in flight ends at once.
    ///
    /// Calling it again can only shorten the budget (the earlier end wins): a second call
    /// with [`Duration::ZERO`] turns a drain into an immediate stop.
    pub fn drain(&self, budget: Duration) {
        let end = Instant::now() + budget;
        let mut requests = self.lock();
        match &mut requests.requested {
            Some(request) if request.end <= end => {}
            slot => *slot = Some(Request { budget, end }),
        }
        let request = requests.requested;
        let runs: Vec<_> = requests.runs.iter().filter_map(Weak::upgrade).collect();
        drop(requests);
        if let Some(request) = request {
            for run in runs {
                run.start(request);
            }
        }
    }

    /// Whether [`drain`](Drain::drain) has been called.
    pub fn is_draining(&self) -> bool {
        self.lock().requested.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, Requests> {
        // No user code runs under this lock.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches a run that is starting; drained at once if the drain was asked already.
    pub(crate) fn register(&self, counters: Arc<Counters>) -> Arc<RunDrain> {
        let run = Arc::new(RunDrain {
            state: Mutex::new(RunState::default()),
            wake: Notify::new(),
            counters,
        });
        let mut requests = self.lock();
        requests.runs.retain(|run| run.strong_count() > 0);
        requests.runs.push(Arc::downgrade(&run));
        let request = requests.requested;
        drop(requests);
        if let Some(request) = request {
            run.start(request);
        }
        run
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

/// The cause a drained pipeline's context is cancelled with when the budget runs out: what
/// [`Context::cause`](crate::Context::cause) returns in its stages. The run itself returns
/// [`Error::DrainTimeout`](crate::Error::DrainTimeout).
///
/// ```
/// use std::time::Duration;
/// let cause = ctxpipe::DrainTimeout { budget: Duration::from_secs(2) };
/// assert_eq!(cause.to_string(), "pipeline drain did not finish within its budget of 2s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainTimeout {
    /// The budget the drain was given.
    pub budget: Duration,
}

impl fmt::Display for DrainTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline drain did not finish within its budget of {:?}",
            self.budget
        )
    }
}

impl std::error::Error for DrainTimeout {}

/// The drain state of one run.
pub(crate) struct RunDrain {
    state: Mutex<RunState>,
    /// Wakes the run's timer when the request arrives or moves.
    wake: Notify,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct RunState {
    request: Option<Request>,
    /// The sources' own contexts: cancelling one makes its source end its output.
    sources: Vec<CancelHandle>,
}

impl RunDrain {
    fn lock(&self) -> MutexGuard<'_, RunState> {
        // No user code runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a source's context; cancelled at once if the drain has started.
    pub(crate) fn add_source(&self, source: CancelHandle) {
        let mut state = self.lock();
        if state.request.is_some() {
            drop(state);
            source.cancel();
        } else {
            state.sources.push(source);
        }
    }

    fn start(&self, request: Request) {
        let sources = {
            let mut state = self.lock();
            state.request = Some(request);
            std::mem::take(&mut state.sources)
        };
        self.counters
            .drained(request.budget, DrainOutcome::Draining);
        for source in sources {
            source.cancel();
        }
        self.wake.notify_one();
    }

    fn request(&self) -> Option<Request> {
        self.lock().request
    }

    /// Waits for the drain, then for its budget to run out, then cancels the pipeline with
    /// [`DrainTimeout`]. Never resolves: the run's future drops it when the run is over.
    pub(crate) async fn time_out(&self, pipeline: &CancelHandle) -> Infallible {
        let mut request = loop {
            // A `notify_one` before this wait leaves a permit, so no request is missed.
            match self.request() {
                Some(request) => break request,
                None => self.wake.notified().await,
            }
        };
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(request.end) => break,
                () = self.wake.notified() => {
                    request = self.request().unwrap_or(request);
                }
            }
        }
        // A no-op if the run was already ending some other way: the first cancel wins, and
        // the run reads which one it was from the context's cause.
        pipeline.cancel_with(DrainTimeout {
            budget: request.budget,
        });
        pending().await
    }

    /// Records in the report how the drain ended, once the run is over (`completed`: it
    /// returned `Ok`): whether the pipeline's context ended with [`DrainTimeout`] (the first
    /// cancel of any kind wins) or something else stopped it.
    pub(crate) fn settle(&self, pipeline: &Context, completed: bool) {
        if let Some(request) = self.request() {
            let outcome = if completed {
                DrainOutcome::Completed
            } else if pipeline
                .cause()
                .is_some_and(|cause| cause.is::<DrainTimeout>())
            {
                DrainOutcome::TimedOut
            } else {
                DrainOutcome::Stopped
            };
            self.counters.drained(request.budget, outcome);
        }
    }
}
