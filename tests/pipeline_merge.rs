//! Several sources merged into one pipeline: fair to each, every end counted, and drained or
//! cancelled as one.

use std::time::Duration;

use ctxpipe::{pipeline, Context, Drain, Error, Pipeline, Source, StageOptions};
use futures::StreamExt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    A,
    B,
}

async fn first_10k(sources: Vec<Source<From>>) -> (usize, usize) {
    let mut stream = Pipeline::<_, Error>::merge(&Context::background(), sources)
        .map(
            StageOptions::new("tag").workers(2),
            |_ctx, from| async move { Ok(from) },
        )
        .into_stream();
    let (mut a, mut b) = (0, 0);
    for _ in 0..10_000 {
        match stream.next().await.unwrap().unwrap() {
            From::A => a += 1,
            From::B => b += 1,
        }
    }
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endless_sources_share_the_pipeline_fairly() {
    let endless = |from| std::iter::repeat(from);
    for sources in [
        vec![
            Source::iter(endless(From::A)),
            Source::iter(endless(From::B)),
        ],
        vec![
            Source::iter(endless(From::A)),
            Source::stream(futures::stream::repeat(From::B)),
        ],
    ] {
        let (a, b) = first_10k(sources).await;
        assert!(a >= 4_000 && b >= 4_000, "A {a}, B {b}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn two_endless_sources_share_one_thread_fairly() {
    let endless = |from| std::iter::repeat(from);
    let (a, b) = first_10k(vec![
        Source::iter(endless(From::A)),
        Source::iter(endless(From::B)),
    ])
    .await;
    assert!(a >= 4_000 && b >= 4_000, "A {a}, B {b}");
}

#[tokio::test]
async fn every_source_is_read_to_its_end_and_counted() {
    let (items, report) = Pipeline::<_, Error>::merge(
        &Context::background(),
        [
            Source::iter(0..1000u32),
            Source::stream(futures::stream::iter(1000..1500u32)),
            Source::iter(Vec::new()),
        ],
    )
    .with_report()
    .collect()
    .await;
    let mut items = items.unwrap();
    items.sort_unstable();
    assert!(items.into_iter().eq(0..1500));
    let produced: Vec<_> = report
        .sources
        .iter()
        .map(|s| (s.produced, s.ended))
        .collect();
    assert_eq!(produced, [(1000, true), (500, true), (0, true)]);
    assert_eq!(report.produced, 1500);
    assert!(report.to_string().contains("source 2"), "{report}");

    // No source at all: nothing to do.
    let none = Pipeline::<u32, Error>::merge(&Context::background(), [])
        .collect()
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_drain_stops_every_source_and_the_macro_merges() {
    let drain = Drain::new();
    let stopper = {
        let drain = drain.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drain.drain(Duration::from_secs(1));
        })
    };
    let letters = futures::stream::repeat(7u64);
    let (count, report) = pipeline! {
        drained_by = drain;
        report;
        from 0u64.., stream letters, [1u64, 2, 3]
        => |_ctx, n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, Error>(n)
        } [workers = 4, buffer = 8]
        => count
    }
    .await;
    stopper.await.unwrap();
    assert_eq!(count.unwrap() as u64, report.produced);
    assert_eq!(report.sources.len(), 3);
    // The endless ones were stopped, not ended; the short one ended.
    let ended: Vec<_> = report.sources.iter().map(|s| s.ended).collect();
    assert_eq!(ended, [false, false, true]);
}
