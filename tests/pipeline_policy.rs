//! What a stage does about failed calls: its error policy, its retries under the deadline and
//! its per-item timeout — with exact counts, and no item lost or dropped twice.

use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctxpipe::{Backoff, Context, Error, ItemError, Location, OnError, Pipeline, StageOptions};
use tokio::time::{sleep, Instant};

mod support;
use support::{alive, Drops, Item, CLONED};

#[derive(Clone, Debug, PartialEq)]
enum Failure {
    Context(Error),
    /// A failure worth retrying, with the attempt it happened on.
    Transient(u32),
    Permanent,
    Bad(u64),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Context(err)
    }
}

const ITEMS: u64 = 200;

fn fails(n: u64) -> bool {
    n % 7 == 3
}

/// Every combination of policy, order and workers: exact counts, every item accounted for and
/// dropped once, no task left.
#[tokio::test(start_paused = true)]
async fn each_policy_ordered_or_not_with_one_or_many_workers() {
    let failing = (0..ITEMS).filter(|&n| fails(n)).count() as u64;
    for policy in [OnError::Fail, OnError::Skip] {
        for ordered in [false, true] {
            for workers in [1, 4] {
                let case = format!("{policy:?}, ordered: {ordered}, workers: {workers}");
                let baseline = alive();
                let drops = Drops::default();
                let source: Vec<Item> = (0..ITEMS).map(|n| drops.item(n)).collect();
                let mut options = StageOptions::new("check").workers(workers).on_error(policy);
                if ordered {
                    options = options.ordered();
                }
                let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), source)
                    .map(options, |_ctx, item: Item| async move {
                        // Uneven call times, so that several workers finish out of order.
                        sleep(Duration::from_millis(item.n % 3)).await;
                        if fails(item.n) {
                            Err(Failure::Bad(item.n))
                        } else {
                            Ok(item)
                        }
                    })
                    .with_report()
                    .collect()
                    .await;
                assert_eq!(alive(), baseline, "{case}: tasks left");
                let stage = report.stage("check").unwrap();
                match policy {
                    OnError::Skip => {
                        let out: Vec<u64> = result.unwrap().iter().map(|item| item.n).collect();
                        assert_eq!(out.len() as u64, ITEMS - failing, "{case}");
                        if ordered || workers == 1 {
                            let expected: Vec<u64> = (0..ITEMS).filter(|&n| !fails(n)).collect();
                            assert_eq!(out, expected, "{case}");
                        }
                        assert_eq!(stage.items_in, ITEMS, "{case}");
                        assert_eq!(stage.items_out, ITEMS - failing, "{case}");
                        assert_eq!(stage.skipped, failing, "{case}");
                        assert_eq!(stage.errors, failing, "{case}");
                        assert_eq!(report.consumed, ITEMS - failing, "{case}");
                        assert_eq!(report.failure, None, "{case}");
                    }
                    _ => {
                        let Err(Failure::Bad(n)) = result else {
                            panic!("{case}: {result:?}");
                        };
                        assert!(fails(n), "{case}");
                        assert_eq!(stage.skipped, 0, "{case}");
                        assert_eq!(report.failure, Some(Location::new("check", n, 1, 1)));
                        if workers == 1 {
                            assert_eq!(n, 3, "{case}");
                        }
                    }
                }
                drops.assert_each_dropped_once(ITEMS);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_skipping_pipeline_still_stops_on_cancel_and_on_drop() {
    let baseline = alive();
    let drops = Drops::default();
    let (ctx, cancel) = Context::background().with_cancel();
    let stage = StageOptions::new("slow").workers(4).on_error(OnError::Skip);
    let run =
        Pipeline::<_, Failure>::new(&ctx, (0..ITEMS).map(|n| drops.item(n)).collect::<Vec<_>>())
            .map(stage, |_ctx, item: Item| async move {
                sleep(Duration::from_secs(1)).await;
                if fails(item.n) {
                    Err(Failure::Bad(item.n))
                } else {
                    Ok(item)
                }
            })
            .collect();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        sleep(Duration::from_millis(2_500)).await;
        cancel.cancel();
    });
    assert_eq!(run.await.err(), Some(Failure::Context(Error::Canceled)));
    assert_eq!(started.elapsed(), Duration::from_millis(2_500));
    canceller.await.unwrap();
    assert_eq!(alive(), baseline);
    drops.assert_each_dropped_once(ITEMS);

    let drops = Drops::default();
    let run = Pipeline::<_, Failure>::new(
        &Context::background(),
        (0..ITEMS).map(|n| drops.item(n)).collect::<Vec<_>>(),
    )
    .map(
        StageOptions::new("slow").workers(4).on_error(OnError::Skip),
        |_ctx, item: Item| async move {
            sleep(Duration::from_secs(1)).await;
            Ok::<_, Failure>(item)
        },
    )
    .collect();
    let _ = tokio::time::timeout(Duration::from_millis(1_500), run).await;
    // The dropped run's tasks are aborted; let the runtime reap them.
    while alive() != baseline {
        tokio::task::yield_now().await;
    }
    drops.assert_each_dropped_once(ITEMS);
}

/// Calls of a stage that fails on its first `failures` attempts at each item, recording when
/// each attempt started.
#[derive(Clone, Default)]
struct Flaky(Arc<Mutex<Vec<Instant>>>);

impl Flaky {
    fn attempt(&self) -> u32 {
        let mut attempts = self.0.lock().unwrap();
        attempts.push(Instant::now());
        attempts.len() as u32
    }

    fn times_since(&self, start: Instant) -> Vec<u64> {
        let attempts = self.0.lock().unwrap();
        attempts
            .iter()
            .map(|at| (*at - start).as_millis() as u64)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn retries_wait_their_backoff_exactly() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let start = Instant::now();
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(25)).jitter(false);
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), [7_u64])
        .map(
            StageOptions::new("flaky").retry(5).backoff(backoff),
            move |_ctx, n| {
                let attempt = calls.attempt();
                async move {
                    if attempt < 4 {
                        Err(Failure::Transient(attempt))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Ok(vec![7]));
    // Waits of 10, 20 and 25 (the max) ms.
    assert_eq!(flaky.times_since(start), [0, 10, 30, 55]);
    let stage = report.stage("flaky").unwrap();
    assert_eq!((stage.retried, stage.errors, stage.items_out), (3, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_fails_the_item_with_its_own_error() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), [1_u64])
        .map(
            StageOptions::new("charge")
                .retry(2)
                .backoff(Backoff::fixed(Duration::from_millis(5))),
            move |_ctx, _n| {
                let attempt = calls.attempt();
                async move { Err::<u64, _>(Failure::Transient(attempt)) }
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Err(Failure::Transient(3)));
    let failure = report.failure.clone().unwrap();
    assert_eq!(failure, Location::new("charge", 0, 3, 3));
    assert_eq!(
        failure.to_string(),
        "stage `charge`, item #0 (attempt 3 of 3)"
    );
    let stage = report.stage("charge").unwrap();
    assert_eq!((stage.retried, stage.errors), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_would_not_fit_the_deadline_is_not_started() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(100));
    let result = Pipeline::<_, Failure>::new(&ctx, [1_u64])
        .map(
            StageOptions::new("slow")
                .retry(10)
                .backoff(Backoff::fixed(Duration::from_millis(60)).jitter(false)),
            move |_ctx, _n| {
                let attempt = calls.attempt();
                async move {
                    sleep(Duration::from_millis(10)).await;
                    Err::<u64, _>(Failure::Transient(attempt))
                }
            },
        )
        .collect()
        .await;
    // Attempt 1 fails at 10 ms; 10 + 60 + 10 fits in 100, so attempt 2 runs at 70 and fails
    // at 80; 80 + 60 + 10 does not fit: the item fails there, with attempt 2's error.
    assert_eq!(result, Err(Failure::Transient(2)));
    assert_eq!(flaky.times_since(start), [0, 70]);
    assert_eq!(start.elapsed(), Duration::from_millis(80));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_a_backoff_returns_at_once() {
    let baseline = alive();
    let (ctx, cancel) = Context::background().with_cancel();
    let start = Instant::now();
    let canceller = tokio::spawn(async move {
        sleep(Duration::from_secs(1)).await;
        cancel.cancel();
    });
    let result = Pipeline::<_, Failure>::new(&ctx, [1_u64])
        .map(
            StageOptions::new("patient")
                .retry(3)
                .backoff(Backoff::fixed(Duration::from_secs(3_600))),
            |_ctx, _n| async move { Err::<u64, _>(Failure::Transient(1)) },
        )
        .collect()
        .await;
    assert_eq!(result, Err(Failure::Context(Error::Canceled)));
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    canceller.await.unwrap();
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn only_retryable_errors_are_retried() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), [1_u64, 2])
        .map(
            StageOptions::new("pick")
                .retry(3)
                .retry_if(|err: &Failure| matches!(err, Failure::Transient(_)))
                .backoff(Backoff::fixed(Duration::from_millis(1)))
                .on_error(OnError::Skip),
            move |_ctx, n| {
                let attempt = calls.attempt();
                async move {
                    match n {
                        1 => Err(Failure::Permanent),
                        _ if attempt < 3 => Err(Failure::Transient(attempt)),
                        _ => Ok(n),
                    }
                }
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Ok(vec![2]));
    // Item 1 once, item 2 twice then once more.
    assert_eq!(flaky.0.lock().unwrap().len(), 3);
    let stage = report.stage("pick").unwrap();
    assert_eq!((stage.retried, stage.skipped, stage.errors), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn ordered_output_flows_past_a_timed_out_item() {
    let start = Instant::now();
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), 0..20_u64)
        .map(
            StageOptions::new("lookup")
                .workers(4)
                .ordered()
                .timeout(Duration::from_millis(50))
                .on_error(OnError::Skip),
            |ctx: Context, n| async move {
                assert!(ctx.deadline().is_some(), "each call runs under its timeout");
                if n == 2 {
                    pending::<()>().await;
                }
                sleep(Duration::from_millis(1)).await;
                Ok(n)
            },
        )
        .with_report()
        .collect()
        .await;
    let expected: Vec<u64> = (0..20).filter(|&n| n != 2).collect();
    assert_eq!(result, Ok(expected));
    let stage = report.stage("lookup").unwrap();
    assert_eq!(
        (stage.timed_out, stage.skipped, stage.items_out),
        (1, 1, 19)
    );
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_item_fails_with_deadline_exceeded() {
    let start = Instant::now();
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), 0..5_u64)
        .map(
            StageOptions::new("lookup").timeout(Duration::from_millis(50)),
            |_ctx, n| async move {
                if n == 3 {
                    pending::<()>().await;
                }
                Ok(n)
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Err(Failure::Context(Error::DeadlineExceeded)));
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(report.failure, Some(Location::new("lookup", 3, 1, 1)));
    assert_eq!(report.stage("lookup").unwrap().timed_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_that_notices_its_own_timeout_is_timed_out() {
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), [1_u64])
        .map(
            StageOptions::new("aware").timeout(Duration::from_millis(50)),
            |ctx: Context, _n| async move {
                ctx.done().await;
                Err::<u64, _>(Failure::from(ctx.err().unwrap()))
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Err(Failure::Context(Error::DeadlineExceeded)));
    assert_eq!(report.stage("aware").unwrap().timed_out, 1);
}

#[tokio::test(start_paused = true)]
async fn the_pipelines_own_earlier_deadline_wins_over_a_timeout() {
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    let (result, report) = Pipeline::<_, Failure>::new(&ctx, [1_u64])
        .map(
            StageOptions::new("lookup")
                .timeout(Duration::from_millis(50))
                .on_error(OnError::Skip),
            |ctx: Context, _n| async move {
                assert_eq!(
                    ctx.deadline(),
                    Some(Instant::now() + Duration::from_millis(20))
                );
                pending::<()>().await;
                Ok::<u64, Failure>(0)
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Err(Failure::Context(Error::DeadlineExceeded)));
    assert_eq!(start.elapsed(), Duration::from_millis(20));
    let stage = report.stage("lookup").unwrap();
    assert_eq!((stage.timed_out, stage.skipped), (0, 0));
    assert_eq!(report.failure, None);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried() {
    let flaky = Flaky::default();
    let calls = flaky.clone();
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), [1_u64])
        .map(
            StageOptions::new("slow-then-quick")
                .timeout(Duration::from_millis(50))
                .retry(1)
                .backoff(Backoff::fixed(Duration::from_millis(5)).jitter(false)),
            move |_ctx, n| {
                let attempt = calls.attempt();
                async move {
                    if attempt == 1 {
                        pending::<()>().await;
                    }
                    Ok(n)
                }
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Ok(vec![1]));
    let stage = report.stage("slow-then-quick").unwrap();
    assert_eq!((stage.timed_out, stage.retried, stage.errors), (1, 1, 0));
}

/// Items handed to a dead-letter sink, with their errors.
type Letters = Arc<Mutex<Vec<(Item, ItemError<Failure>)>>>;

fn letter_box(
    letters: &Letters,
) -> impl FnMut(Item, ItemError<Failure>) -> std::future::Ready<Result<(), Failure>> + Send + 'static
{
    let letters = letters.clone();
    move |item, err| {
        letters.lock().unwrap().push((item, err));
        std::future::ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn dead_letters_ordered_or_not_with_one_or_many_workers() {
    let failing: Vec<u64> = (0..ITEMS).filter(|&n| fails(n)).collect();
    for ordered in [false, true] {
        for workers in [1, 4] {
            let case = format!("ordered: {ordered}, workers: {workers}");
            let baseline = alive();
            let drops = Drops::default();
            let letters = Letters::default();
            let source: Vec<Item> = (0..ITEMS).map(|n| drops.item(n)).collect();
            let mut options = StageOptions::new("check")
                .workers(workers)
                .dead_letter(letter_box(&letters));
            if ordered {
                options = options.ordered();
            }
            let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), source)
                .map(options, |_ctx, item: Item| async move {
                    sleep(Duration::from_millis(item.n % 3)).await;
                    if fails(item.n % CLONED) {
                        Err(Failure::Bad(item.n % CLONED))
                    } else {
                        Ok(item)
                    }
                })
                .with_report()
                .collect()
                .await;
            assert_eq!(alive(), baseline, "{case}: tasks left");
            let out: Vec<u64> = result.unwrap().iter().map(|item| item.n % CLONED).collect();
            let expected: Vec<u64> = (0..ITEMS).filter(|&n| !fails(n)).collect();
            if ordered || workers == 1 {
                assert_eq!(out, expected, "{case}");
            }
            let mut dead: Vec<u64> = letters
                .lock()
                .unwrap()
                .iter()
                .map(|(item, err)| {
                    let n = item.n % CLONED;
                    assert_eq!(err.error(), &Failure::Bad(n), "{case}");
                    assert_eq!(err.location(), &Location::new("check", n, 1, 1), "{case}");
                    n
                })
                .collect();
            dead.sort_unstable();
            assert_eq!(dead, failing, "{case}: every failed item reached the sink");
            let stage = report.stage("check").unwrap();
            assert_eq!(stage.dead_lettered, failing.len() as u64, "{case}");
            assert_eq!(stage.errors, failing.len() as u64, "{case}");
            assert_eq!(stage.items_out, ITEMS - failing.len() as u64, "{case}");
            letters.lock().unwrap().clear();
            drops.assert_each_dropped_once(ITEMS);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_dead_letter_sink_fails_the_run() {
    let baseline = alive();
    let result = Pipeline::<_, Failure>::new(&Context::background(), 0..100_u64)
        .map(
            StageOptions::new("check")
                .workers(4)
                .dead_letter(|n: u64, _err| async move { Err::<(), _>(Failure::Bad(1_000 + n)) }),
            |_ctx, n| async move {
                if n == 10 {
                    Err(Failure::Permanent)
                } else {
                    Ok(n)
                }
            },
        )
        .collect()
        .await;
    assert_eq!(result, Err(Failure::Bad(1_010)));
    assert_eq!(alive(), baseline);
}

#[tokio::test(start_paused = true)]
async fn a_slow_dead_letter_sink_holds_the_stage_back_and_loses_nothing() {
    let letters = Letters::default();
    let drops = Drops::default();
    let start = Instant::now();
    let sink = {
        let letters = letters.clone();
        move |item: Item, err: ItemError<Failure>| {
            let letters = letters.clone();
            async move {
                sleep(Duration::from_millis(10)).await;
                letters.lock().unwrap().push((item, err));
                Ok(())
            }
        }
    };
    let (result, report) = Pipeline::<_, Failure>::new(
        &Context::background(),
        (0..50).map(|n| drops.item(n)).collect::<Vec<_>>(),
    )
    .map(
        StageOptions::new("all-fail").buffer(4).dead_letter(sink),
        |_ctx, item: Item| async move { Err::<Item, _>(Failure::Bad(item.n % CLONED)) },
    )
    .with_report()
    .count()
    .await;
    assert_eq!(result, Ok(0));
    assert_eq!(report.stage("all-fail").unwrap().dead_lettered, 50);
    // One sink call at a time: the run lasts as long as the sink does.
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    letters.lock().unwrap().clear();
    drops.assert_each_dropped_once(50);
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_says_which_attempt_failed_last() {
    let letters: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = {
        let letters = letters.clone();
        move |n: u64, err: ItemError<Failure>| {
            letters
                .lock()
                .unwrap()
                .push(format!("{n} {:?}", err.location()));
            async { Ok(()) }
        }
    };
    let result = Pipeline::<_, Failure>::new(&Context::background(), [5_u64])
        .map(
            StageOptions::new("flaky")
                .retry(2)
                .backoff(Backoff::fixed(Duration::from_millis(1)))
                .dead_letter(sink),
            |_ctx, _n| async move { Err::<u64, _>(Failure::Transient(0)) },
        )
        .count()
        .await;
    assert_eq!(result, Ok(0));
    assert_eq!(
        *letters.lock().unwrap(),
        [format!("5 {:?}", Location::new("flaky", 0, 3, 3))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_lettering_pipeline_still_stops_on_cancel() {
    let baseline = alive();
    let drops = Drops::default();
    let letters = Letters::default();
    let (ctx, cancel) = Context::background().with_cancel();
    let stage = StageOptions::new("slow")
        .workers(4)
        .retry(1)
        .backoff(Backoff::fixed(Duration::from_millis(300)))
        .dead_letter(letter_box(&letters));
    let run =
        Pipeline::<_, Failure>::new(&ctx, (0..ITEMS).map(|n| drops.item(n)).collect::<Vec<_>>())
            .map(stage, |_ctx, item: Item| async move {
                sleep(Duration::from_secs(1)).await;
                if fails(item.n % CLONED) {
                    Err(Failure::Bad(item.n % CLONED))
                } else {
                    Ok(item)
                }
            })
            .collect();
    let canceller = tokio::spawn(async move {
        sleep(Duration::from_millis(5_100)).await;
        cancel.cancel();
    });
    let started = Instant::now();
    assert_eq!(run.await.err(), Some(Failure::Context(Error::Canceled)));
    assert_eq!(started.elapsed(), Duration::from_millis(5_100));
    canceller.await.unwrap();
    assert_eq!(alive(), baseline);
    assert!(
        !letters.lock().unwrap().is_empty(),
        "some items failed before the cancel"
    );
    letters.lock().unwrap().clear();
    drops.assert_each_dropped_once(ITEMS);
}

#[tokio::test(start_paused = true)]
async fn a_retrying_stage_hands_an_error_it_does_not_retry_to_its_dead_letter_sink() {
    let letters: Arc<Mutex<Vec<Location>>> = Arc::default();
    let sink = {
        let letters = letters.clone();
        move |_n: u64, err: ItemError<Failure>| {
            letters.lock().unwrap().push(err.location().clone());
            async { Ok(()) }
        }
    };
    let (result, report) = Pipeline::<_, Failure>::new(&Context::background(), [1_u64, 2])
        .map(
            StageOptions::new("pick")
                .retry(3)
                .retry_if(|err: &Failure| matches!(err, Failure::Transient(_)))
                .dead_letter(sink),
            |_ctx, n| async move {
                if n == 1 {
                    Err(Failure::Permanent)
                } else {
                    Ok(n)
                }
            },
        )
        .with_report()
        .collect()
        .await;
    assert_eq!(result, Ok(vec![2]));
    assert_eq!(*letters.lock().unwrap(), [Location::new("pick", 0, 1, 4)]);
    let stage = report.stage("pick").unwrap();
    assert_eq!(
        (stage.retried, stage.dead_lettered, stage.errors),
        (0, 1, 1)
    );
}
