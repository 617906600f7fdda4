//! Where the time goes: each stage's busy, starved and blocked time, and the step the report
//! names as the bottleneck. On paused time, so a slow step is slow by exactly its sleeps.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ctxpipe::{Bottleneck, Context, Error, Pipeline, StageOptions};
use tokio::time::sleep;

const MS: Duration = Duration::from_millis(1);

async fn quick(n: u32) -> Result<u32, Error> {
    Ok(n)
}

fn stage(name: &'static str) -> StageOptions {
    StageOptions::new(name).buffer(4)
}

#[tokio::test(start_paused = true)]
async fn a_slow_stage_is_busy_what_feeds_it_blocked_and_what_follows_starved() {
    let pipeline = Pipeline::<_, Error>::new(&Context::background(), 0..200u32)
        .map(stage("parse"), |_ctx, n| quick(n))
        .map(stage("fetch").workers(2), |_ctx, n| async move {
            sleep(MS * 10).await;
            Ok(n)
        })
        .map(stage("store"), |_ctx, n| quick(n));
    let progress = pipeline.progress();
    let run = tokio::spawn(pipeline.count());
    sleep(MS * 500).await;
    // Live, halfway.
    let live = progress.report();
    assert!(matches!(live.bottleneck(), Some(Bottleneck::Stage { name, .. }) if name == "fetch"));
    assert!(live.stage("parse").unwrap().queued <= live.stage("parse").unwrap().capacity);
    assert_eq!(run.await.unwrap().unwrap(), 200);

    let report = progress.report();
    let parse = report.stage("parse").unwrap();
    let fetch = report.stage("fetch").unwrap();
    let store = report.stage("store").unwrap();
    // 200 items of 10 ms on 2 workers: about a second of run, two of busy time.
    assert!(fetch.busy >= MS * 2000, "{report}");
    assert!(parse.blocked > MS * 900, "parse waits for room:\n{report}");
    assert!(store.starved > MS * 900, "store waits for input:\n{report}");
    assert_eq!(fetch.capacity, 4);
    match report.bottleneck() {
        Some(Bottleneck::Stage { name, busy, .. }) => {
            assert_eq!(name, "fetch");
            assert!(busy > 0.95, "{busy}");
        }
        other => panic!("{other:?}\n{report}"),
    }
    assert!(
        report
            .to_string()
            .contains("bottleneck: stage `fetch` (its workers are busy"),
        "{report}"
    );
}

/// A stream that yields `0..n`, one item every `gap`.
struct Trickle {
    next: u32,
    n: u32,
    gap: Pin<Box<tokio::time::Sleep>>,
    period: Duration,
}

impl futures::Stream for Trickle {
    type Item = u32;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<u32>> {
        if self.next == self.n {
            return Poll::Ready(None);
        }
        if self.gap.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let deadline = self.gap.deadline() + self.period;
        self.gap.as_mut().reset(deadline);
        self.next += 1;
        Poll::Ready(Some(self.next - 1))
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_source_starves_every_stage() {
    let trickle = Trickle {
        next: 0,
        n: 50,
        gap: Box::pin(sleep(MS * 10)),
        period: MS * 10,
    };
    let (count, report) = Pipeline::<_, Error>::from_stream(&Context::background(), trickle)
        .map(stage("parse"), |_ctx, n| quick(n))
        .map(stage("store"), |_ctx, n| quick(n))
        .with_report()
        .count()
        .await;
    assert_eq!(count.unwrap(), 50);
    assert!(
        matches!(report.bottleneck(), Some(Bottleneck::Source { starved }) if starved > 0.9),
        "{report}"
    );
    assert!(report.to_string().contains("bottleneck: the source"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_sink_blocks_the_last_stage() {
    let (done, report) = Pipeline::<_, Error>::new(&Context::background(), 0..100u32)
        .map(stage("parse"), |_ctx, n| quick(n))
        .map(stage("store"), |_ctx, n| quick(n))
        .with_report()
        .try_for_each(|_| async {
            sleep(MS * 5).await;
            Ok(())
        })
        .await;
    done.unwrap();
    assert!(
        matches!(report.bottleneck(), Some(Bottleneck::Sink { blocked }) if blocked > 0.9),
        "{report}"
    );
    assert!(report.to_string().contains("bottleneck: the sink"));
}

#[tokio::test]
async fn no_stage_no_bottleneck() {
    let (_, report) = Pipeline::<_, Error>::new(&Context::background(), 0..10u32)
        .with_report()
        .count()
        .await;
    assert_eq!(report.bottleneck(), None);
    assert!(!report.to_string().contains("bottleneck"));
}
