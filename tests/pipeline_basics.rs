//! The pipeline's stages, sources and sinks, its reports, and the context its stages see.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::{Context, Error, Pipeline, StageOptions};

fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[derive(Debug, PartialEq)]
enum AppError {
    Context(Error),
    Parse(String),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Context(err)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(err: std::num::ParseIntError) -> Self {
        AppError::Parse(err.to_string())
    }
}

#[tokio::test]
async fn map_filter_flat_and_exact_report() {
    let pipeline = Pipeline::new(&Context::background(), 0..1000u32)
        .map("double", |_ctx, n| async move { Ok(n * 2) })
        .filter_map(
            StageOptions::new("fourths").workers(3),
            |_ctx, n| async move { Ok((n % 4 == 0).then_some(n)) },
        )
        .flat_map("triple", |_ctx, n| async move { Ok(vec![n; 3]) });
    let progress = pipeline.progress();
    let out: Vec<u32> = pipeline.collect().await.map_err(|e: Error| e).unwrap();
    assert_eq!(alive(), 0, "every task has finished when the run returns");

    let mut sorted = out.clone();
    sorted.sort_unstable();
    let expected: Vec<u32> = (0..1000)
        .map(|n| n * 2)
        .filter(|n| n % 4 == 0)
        .flat_map(|n| [n; 3])
        .collect();
    assert_eq!(sorted, expected);

    let report = progress.report();
    assert_eq!((report.produced, report.consumed), (1000, 1500));
    assert_eq!(report.errors(), 0);
    let names: Vec<_> = report.stages.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["double", "fourths", "triple"]);
    // (items in, items out, filtered, workers)
    let counts = |name: &str| {
        let stage = report.stage(name).unwrap();
        (
            stage.items_in,
            stage.items_out,
            stage.filtered,
            stage.workers,
        )
    };
    assert_eq!(counts("double"), (1000, 1000, 0, 1));
    assert_eq!(counts("fourths"), (1000, 500, 500, 3));
    let triple = report.stage("triple").unwrap();
    assert_eq!((triple.items_in, triple.items_out), (500, 1500));
    for stage in &report.stages {
        assert_eq!(stage.queued, 0, "{}: queue drained", stage.name);
        assert!(stage.peak_queue >= 1 && stage.peak_queue <= ctxpipe::DEFAULT_BUFFER);
    }
}

#[tokio::test(start_paused = true)]
async fn busy_time_is_time_spent_in_the_stage() {
    let pipeline = Pipeline::new(&Context::background(), 0..10)
        .map("sleepy", |_ctx, n: u32| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(n)
        })
        .map("instant", |_ctx, n| async move { Ok(n) });
    let progress = pipeline.progress();
    let n: Result<usize, Error> = pipeline.count().await;
    assert_eq!(n, Ok(10));
    let report = progress.report();
    assert_eq!(
        report.stage("sleepy").unwrap().busy,
        Duration::from_millis(10)
    );
    assert_eq!(report.stage("instant").unwrap().busy, Duration::ZERO);
    println!("{report}");
}

#[tokio::test]
async fn every_sink() {
    let bg = Context::background();
    let collected: Result<Vec<i32>, Error> = Pipeline::new(&bg, 1..=5).collect().await;
    assert_eq!(collected, Ok(vec![1, 2, 3, 4, 5]));

    let counted: Result<usize, Error> = Pipeline::new(&bg, 1..=5).count().await;
    assert_eq!(counted, Ok(5));

    let folded: Result<String, Error> = Pipeline::new(&bg, ["a", "b", "c"])
        .fold(String::new(), |acc, s| acc + s)
        .await;
    assert_eq!(folded.as_deref(), Ok("abc"));

    // `for_each` runs in the caller's future: it borrows local, non-`Send` state.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let result: Result<(), Error> = Pipeline::new(&bg, 1..=3)
        .for_each(|n| seen.borrow_mut().push(n))
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(*seen.borrow(), [1, 2, 3]);

    let total = Arc::new(AtomicUsize::new(0));
    let result: Result<(), Error> = Pipeline::new(&bg, 1..=4usize)
        .try_for_each(|n| {
            let total = total.clone();
            async move {
                tokio::task::yield_now().await;
                total.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
        })
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(total.load(Ordering::Relaxed), 10);
    assert_eq!(alive(), 0);
}

#[tokio::test]
async fn a_failing_sink_is_the_first_error() {
    let pipeline =
        Pipeline::new(&Context::background(), 0..100u32).map("id", |_ctx, n| async move { Ok(n) });
    let progress = pipeline.progress();
    let result = pipeline
        .try_for_each(|n| async move {
            if n == 7 {
                Err(AppError::Parse(format!("sink refused {n}")))
            } else {
                Ok(())
            }
        })
        .await;
    assert_eq!(result, Err(AppError::Parse("sink refused 7".into())));
    let report = progress.report();
    assert_eq!((report.sink_errors, report.consumed), (1, 8));
    assert_eq!(alive(), 0);
}

#[tokio::test]
async fn the_error_type_is_inferred_and_question_mark_converts() {
    // `E` is named once, by the result's binding; `?` converts `ParseIntError` via `From`.
    let parsed: Result<Vec<u32>, AppError> = Pipeline::new(&Context::background(), ["1", "2"])
        .map(
            "parse",
            |_ctx, s: &str| async move { Ok(s.parse::<u32>()?) },
        )
        .map("inc", |_ctx, n| async move { Ok(n + 1) })
        .collect()
        .await;
    assert_eq!(parsed, Ok(vec![2, 3]));

    let failed = Pipeline::new(&Context::background(), ["1", "x"])
        .map(
            "parse",
            |_ctx, s: &str| async move { Ok(s.parse::<u32>()?) },
        )
        .count()
        .await;
    assert!(matches!(failed, Err(AppError::Parse(_))), "{failed:?}");

    // A stage function with its own error type joins with `?`.
    async fn lookup(_ctx: &Context, id: u32) -> Result<String, std::io::Error> {
        Ok(format!("user-{id}"))
    }
    let names = Pipeline::<_, anyhow::Error>::new(&Context::background(), 1..=2)
        .map(
            "lookup",
            |ctx, id| async move { Ok(lookup(&ctx, id).await?) },
        )
        .collect()
        .await
        .unwrap();
    assert_eq!(names, ["user-1", "user-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_future_is_send_and_spawnable() {
    let pipeline = Pipeline::new(&Context::background(), 0..10_000u64)
        .map(StageOptions::new("cpu").workers(4), |_ctx, n| async move {
            Ok(n.wrapping_mul(n))
        })
        .fold(0u64, u64::wrapping_add);
    let sum: Result<u64, Error> = tokio::spawn(pipeline).await.unwrap();
    assert_eq!(sum, Ok((0..10_000u64).map(|n| n * n).sum()));
}

#[tokio::test]
async fn stages_see_the_callers_values_and_deadline() {
    #[derive(Debug, PartialEq)]
    struct Tenant(&'static str);

    let (ctx, _cancel) = Context::background()
        .with_value(Tenant("acme"))
        .with_timeout(Duration::from_secs(3600));
    let seen: Result<Vec<_>, Error> = Pipeline::new(&ctx, 0..3)
        .map(StageOptions::new("who").workers(2).ordered(), |ctx, n: i32| async move {
            Ok((n, ctx.value::<Tenant>().map(|t| t.0), ctx.deadline()))
        })
        .collect()
        .await;
    let seen = seen.unwrap();
    assert_eq!(seen.len(), 3);
    for (i, (n, tenant, deadline)) in seen.into_iter().enumerate() {
        assert_eq!(n, i as i32);
        assert_eq!(tenant, Some("acme"));
        assert_eq!(deadline, ctx.deadline());
    }
    assert_eq!(
        ctx.__live_children(),
        0,
        "the pipeline's context left the caller's"
    );
}

#[tokio::test]
async fn a_stream_source() {
    struct Countdown(u32);
    impl futures::Stream for Countdown {
        type Item = u32;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<u32>> {
            // Pending every third item, to exercise partial batches.
            if self.0 % 3 == 0 && self.0 != 0 {
                self.0 -= 1;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            let n = self.0;
            if n == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            std::task::Poll::Ready(Some(n))
        }
    }
    let out: Result<Vec<u32>, Error> = Pipeline::from_stream(&Context::background(), Countdown(10))
        .map("id", |_ctx, n| async move { Ok(n) })
        .collect()
        .await;
    assert_eq!(out, Ok(vec![10, 8, 7, 5, 4, 2, 1]));

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for n in 0..100u32 {
            tx.send(n).await.unwrap();
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|n| (n, rx)) });
    let sum: Result<u32, Error> = Pipeline::from_stream(&Context::background(), stream)
        .fold(0, |a, n| a + n)
        .await;
    assert_eq!(sum, Ok(4950));
}

#[tokio::test]
async fn a_pipeline_without_stages() {
    let all: Result<Vec<u8>, Error> = Pipeline::new(&Context::background(), Vec::<u8>::new())
        .collect()
        .await;
    assert_eq!(all, Ok(vec![]));
    let n: Result<usize, Error> = Pipeline::new(&Context::background(), 0..777).count().await;
    assert_eq!(n, Ok(777));
    assert_eq!(alive(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_items() {
    let pipeline = Pipeline::new(&Context::background(), 0..1_000_000u64)
        .map("a", |_ctx, n| async move { Ok(n + 1) })
        .map(StageOptions::new("b").workers(2), |_ctx, n| async move {
            Ok(n + 1)
        })
        .map("c", |_ctx, n| async move { Ok(n + 1) });
    let progress = pipeline.progress();
    let sum: Result<u64, Error> = pipeline.fold(0, |a, n| a + n).await;
    assert_eq!(sum, Ok((0..1_000_000u64).map(|n| n + 3).sum()));
    let report = progress.report();
    assert_eq!((report.produced, report.consumed), (1_000_000, 1_000_000));
    assert!(report.stages.iter().all(|s| s.items_out == 1_000_000));
}

#[tokio::test]
async fn zero_options_are_taken_as_one() {
    let options = StageOptions::new("tiny").workers(0).buffer(0).batch(0);
    let out: Result<Vec<i32>, Error> = Pipeline::new(&Context::background(), 0..50)
        .map(options.reorder_window(0), |_ctx, n| async move { Ok(n) })
        .collect()
        .await;
    assert_eq!(out, Ok((0..50).collect()));
}

#[tokio::test]
async fn the_pipeline_context_ends_with_the_run() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let result: Result<usize, Error> = Pipeline::new(&Context::background(), [1])
        .map("keep", move |ctx, n: i32| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(ctx);
            }
            async move { Ok(n) }
        })
        .count()
        .await;
    assert_eq!(result, Ok(1));
    let kept = rx.await.unwrap();
    // Like Go's errgroup: work that kept the stage's context learns that the run is over.
    assert_eq!(kept.err(), Some(Error::Canceled));
}

#[tokio::test(start_paused = true)]
async fn progress_is_readable_while_the_pipeline_runs() {
    let pipeline = Pipeline::new(&Context::background(), 0..100u32).map(
        StageOptions::new("tick").workers(2),
        |_ctx, n| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(n)
        },
    );
    let progress = pipeline.progress();
    let run = tokio::spawn(pipeline.count());
    let mut last = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let report = progress.report();
        let tick = report.stage("tick").unwrap();
        assert!(report.consumed > last, "{report}");
        assert!(tick.items_in >= report.consumed && tick.items_in <= 100);
        last = report.consumed;
    }
    let n: Result<usize, Error> = run.await.unwrap();
    assert_eq!(n, Ok(100));
    assert_eq!(progress.consumed(), 100);
    assert_eq!(progress.produced(), 100);
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ctxpipe::Progress>();
    send_sync::<ctxpipe::Report>();
    send_sync::<StageOptions>();
    send::<Pipeline<String, Error>>();
}

#[tokio::test]
async fn workers_run_their_calls_concurrently() {
    // Each call waits until 8 calls wait together: the run only finishes if 8 run at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let n: Result<usize, Error> = Pipeline::new(&Context::background(), 0..64)
        .map(
            StageOptions::new("together").workers(8),
            move |_ctx, n: i32| {
                let barrier = barrier.clone();
                async move {
                    barrier.wait().await;
                    Ok(n)
                }
            },
        )
        .count()
        .await;
    assert_eq!(n, Ok(64));
}
