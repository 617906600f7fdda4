//! Keyed order: several workers, and the items of each key still leave in input order.

use std::collections::HashMap;
use std::time::Duration;

use ctxpipe::{pipeline, Context, Error, Pipeline, StageOptions};
use proptest::prelude::*;
use tokio::time::sleep;

#[derive(Clone, Copy, Debug)]
struct Event {
    key: u8,
    seq: u32,
    /// How long the stage takes on it, in ms.
    delay: u8,
}

/// Runs `events` through a keyed stage of `workers` workers on paused time; returns the
/// output and how long the run took.
fn run_keyed(events: Vec<Event>, workers: usize) -> (Vec<Event>, Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let start = tokio::time::Instant::now();
        let out = Pipeline::<_, Error>::new(&Context::background(), events)
            .map(
                StageOptions::new("apply")
                    .workers(workers)
                    .ordered_by(|event: &Event| event.key),
                |_ctx, event: Event| async move {
                    sleep(Duration::from_millis(event.delay.into())).await;
                    Ok(event)
                },
            )
            .collect()
            .await
            .unwrap();
        (out, start.elapsed())
    })
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0u8..6, 0u8..20), 0..200).prop_map(|pairs| {
        pairs
            .into_iter()
            .enumerate()
            .map(|(seq, (key, delay))| Event {
                key,
                seq: seq as u32,
                delay,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn each_key_keeps_its_order_and_every_item_comes_out(
        events in events(),
        workers in 1usize..9,
    ) {
        let n = events.len();
        let (out, _) = run_keyed(events, workers);
        prop_assert_eq!(out.len(), n);
        let mut last: HashMap<u8, u32> = HashMap::new();
        for event in &out {
            if let Some(&before) = last.get(&event.key) {
                prop_assert!(before < event.seq, "key {} out of order", event.key);
            }
            last.insert(event.key, event.seq);
        }
        let mut seqs: Vec<u32> = out.iter().map(|event| event.seq).collect();
        seqs.sort_unstable();
        prop_assert!(seqs.into_iter().eq(0..n as u32));
    }
}

#[test]
fn different_keys_run_in_parallel() {
    // 8 keys, 10 items each, 10 ms per item: one worker takes 800 ms; 8 lanes far less.
    let events: Vec<Event> = (0..80)
        .map(|seq| Event {
            key: (seq % 8) as u8,
            seq,
            delay: 10,
        })
        .collect();
    let (_, alone) = run_keyed(events.clone(), 1);
    let (_, parallel) = run_keyed(events, 8);
    assert_eq!(alone, Duration::from_millis(800));
    assert!(parallel <= Duration::from_millis(400), "{parallel:?}");
}

#[tokio::test(start_paused = true)]
async fn the_macro_takes_ordered_by() {
    let events: Vec<(u32, u32)> = (0..40).map(|n| (n % 3, n)).collect();
    let out = pipeline! {
        from events
        => |_ctx, (user, n): (u32, u32)| async move {
            sleep(Duration::from_millis(u64::from(40 - n))).await;
            Ok::<_, Error>((user, n))
        } [workers = 3, ordered_by = |event: &(u32, u32)| event.0]
        => collect
    }
    .await
    .unwrap();
    for user in 0..3 {
        let seen: Vec<u32> = out.iter().filter(|e| e.0 == user).map(|e| e.1).collect();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "user {user}: {seen:?}"
        );
        assert_eq!(seen.len(), (0..40).filter(|n| n % 3 == user).count());
    }
}
