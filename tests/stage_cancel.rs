//! Checkpoints: cancellation and deadlines end a stage at the await that is pending, drop the
//! awaited future, and never poll it on a context that is already done.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use ctxpipe::{stage, CancelHandle, Context, Error};
use tokio::time::Instant;

/// A future that is never ready and records its polls and its drop.
struct Pending {
    polls: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

#[derive(Clone, Default)]
struct Probe {
    polls: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
    after_await: Arc<AtomicBool>,
}

impl Probe {
    fn future(&self) -> Pending {
        Pending {
            polls: self.polls.clone(),
            dropped: self.dropped.clone(),
        }
    }

    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }

    fn after_await(&self) -> bool {
        self.after_await.load(Ordering::SeqCst)
    }
}

impl Future for Pending {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<()> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[stage]
async fn wait_on(probe: Probe) -> Result<(), Error> {
    probe.future().await;
    probe.after_await.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn cancel_while_blocked_returns_canceled_promptly_and_drops_the_future() {
    let (ctx, cancel) = Context::background().with_cancel();
    let probe = Probe::default();
    let task = tokio::spawn({
        let probe = probe.clone();
        async move { wait_on(&ctx, probe).await }
    });
    while probe.polls() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!probe.dropped());

    let started = Instant::now();
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_millis(1), task)
        .await
        .expect("the stage ends as soon as its context is cancelled")
        .unwrap();
    assert_eq!(result, Err(Error::Canceled));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(probe.dropped(), "the pending future is dropped");
    assert!(!probe.after_await(), "nothing after the await runs");
}

#[stage]
async fn sleep_for(duration: Duration) -> Result<(), Error> {
    tokio::time::sleep(duration).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn deadline_expiry_returns_deadline_exceeded_at_the_deadline() {
    let started = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3));
    let result = sleep_for(&ctx, Duration::from_secs(60)).await;
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_future_that_finishes_first_wins() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(3));
    assert_eq!(sleep_for(&ctx, Duration::from_secs(2)).await, Ok(()));
}

#[stage]
async fn cancel_then_await(cancel: CancelHandle, probe: Probe) -> Result<(), Error> {
    cancel.cancel();
    probe.future().await;
    probe.after_await.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn a_checkpoint_on_a_cancelled_context_never_polls_the_future() {
    let (ctx, cancel) = Context::background().with_cancel();
    let probe = Probe::default();
    let result = cancel_then_await(&ctx, cancel, probe.clone()).await;
    assert_eq!(result, Err(Error::Canceled));
    assert_eq!(probe.polls(), 0);
    assert!(probe.dropped());
    assert!(!probe.after_await());
}

#[stage]
async fn records_entry(entered: &AtomicBool) -> Result<(), Error> {
    entered.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn a_done_context_ends_the_stage_before_its_body() {
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    let entered = AtomicBool::new(false);
    assert_eq!(records_entry(&ctx, &entered).await, Err(Error::Canceled));
    assert!(!entered.load(Ordering::SeqCst));

    let (expired, _) = Context::background().with_timeout(Duration::ZERO);
    assert_eq!(
        records_entry(&expired, &entered).await,
        Err(Error::DeadlineExceeded)
    );
    assert!(!entered.load(Ordering::SeqCst));
}

#[stage]
async fn commit(
    cancel: CancelHandle,
    done: tokio::sync::oneshot::Receiver<u32>,
    committed: &AtomicUsize,
) -> Result<(), Error> {
    cancel.cancel();
    // The opt-out, visible at the await: this one runs to completion whatever the context.
    let value = #[uninterruptible]
    done.await;
    committed.store(value.unwrap_or_default() as usize, Ordering::SeqCst);
    #[uninterruptible]
    tokio::task::yield_now().await;
    // The next plain await is a checkpoint again.
    tokio::task::yield_now().await;
    committed.store(0, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn uninterruptible_awaits_are_not_interrupted() {
    let (ctx, cancel) = Context::background().with_cancel();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let committed = AtomicUsize::new(0);
    let stage = commit(&ctx, cancel, rx, &committed);
    tokio::pin!(stage);
    assert!(
        futures::poll!(&mut stage).is_pending(),
        "waits for the commit"
    );
    assert!(ctx.is_done());
    tx.send(7).unwrap();
    assert_eq!(stage.await, Err(Error::Canceled));
    assert_eq!(committed.load(Ordering::SeqCst), 7);
}

#[stage]
async fn nested_futures(cancel: CancelHandle) -> Result<Vec<u32>, Error> {
    cancel.cancel();
    // Awaits inside async blocks and closures belong to other futures: not checkpoints.
    let block = async { std::future::ready(1).await + std::future::ready(1).await };
    let closure = |n: u32| async move { std::future::ready(n).await };
    let mut out = vec![
        #[uninterruptible]
        block.await,
    ];
    out.push(
        #[uninterruptible]
        closure(3).await,
    );
    let rest =
        #[uninterruptible]
        futures::future::join_all((4..6).map(|n| async move { std::future::ready(n).await })).await;
    out.extend(rest);
    Ok(out)
}

#[tokio::test]
async fn awaits_in_closures_and_async_blocks_are_untouched() {
    let (ctx, cancel) = Context::background().with_cancel();
    assert_eq!(nested_futures(&ctx, cancel).await, Ok(vec![2, 3, 4, 5]));
}

#[stage]
async fn panics() -> Result<(), Error> {
    tokio::task::yield_now().await;
    panic!("boom");
}

#[tokio::test]
async fn panics_are_not_caught() {
    let ctx = Context::background();
    let task = tokio::spawn(async move { panics(&ctx).await });
    let err = task.await.unwrap_err();
    assert!(
        err.is_panic(),
        "the panic reaches the task, as without #[stage]"
    );
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[tokio::test]
async fn stage_futures_are_send() {
    let ctx = Context::background();
    let probe = Probe::default();
    let entered = AtomicBool::new(false);
    let (_, cancel) = ctx.with_cancel();
    drop(assert_send(wait_on(&ctx, probe.clone())));
    drop(assert_send(sleep_for(&ctx, Duration::ZERO)));
    drop(assert_send(records_entry(&ctx, &entered)));
    drop(assert_send(cancel_then_await(&ctx, cancel.clone(), probe)));
    drop(assert_send(nested_futures(&ctx, cancel)));
}

/// The same checks at compile time, for a future that holds a `Send` but not `Sync` value
/// across an await (as plain async fns allow).
#[allow(dead_code)]
fn stage_future_with_non_sync_state_is_send(ctx: &Context) {
    #[stage]
    async fn holds_cell() -> Result<u32, Error> {
        let cell = std::cell::Cell::new(1);
        tokio::task::yield_now().await;
        Ok(cell.get())
    }
    drop(assert_send(holds_cell(ctx)));
}
