//! Stages calling stages: `ctx` is passed on, a child context narrows only the calls made with
//! it, and shadowing `ctx` narrows the checkpoints that follow.

use std::time::Duration;

use ctxpipe::{ctx_value, stage, Context, Error};
use tokio::time::Instant;

#[ctx_value]
#[derive(Debug, PartialEq)]
struct RequestId(u32);

#[stage]
async fn leaf(#[ctx_value] id: &RequestId, work: Duration) -> Result<u32, Error> {
    tokio::time::sleep(work).await;
    Ok(id.0)
}

#[stage]
async fn middle(work: Duration) -> Result<u32, Error> {
    let id = leaf(ctx, work).await?;
    Ok(id + 1)
}

#[stage]
async fn top(work: Duration) -> Result<u32, Error> {
    middle(ctx, work).await
}

#[tokio::test(start_paused = true)]
async fn nested_stages_pass_the_context_and_its_values_on() {
    let ctx = Context::background().with_value(RequestId(41));
    assert_eq!(top(&ctx, Duration::from_secs(1)).await, Ok(42));

    let (short, _) = ctx.with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    assert_eq!(
        top(&short, Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[stage]
async fn fan_out() -> Result<(Result<u32, Error>, u32), Error> {
    let (short, _cancel) = ctx.with_timeout(Duration::from_secs(1));
    // Only the call made with the child is bounded by its deadline ...
    let narrowed = leaf(&short, Duration::from_secs(5)).await;
    // ... the stage's own checkpoints and later calls still run under `ctx`.
    let full = leaf(ctx, Duration::from_secs(3)).await?;
    Ok((narrowed, full))
}

#[tokio::test(start_paused = true)]
async fn a_child_context_narrows_only_the_calls_made_with_it() {
    let (ctx, _cancel) = Context::background()
        .with_value(RequestId(7))
        .with_timeout(Duration::from_secs(10));
    let started = Instant::now();
    assert_eq!(fan_out(&ctx).await, Ok((Err(Error::DeadlineExceeded), 7)));
    assert_eq!(started.elapsed(), Duration::from_secs(4));
}

#[stage]
async fn shadowed(log: &mut Vec<&'static str>) -> Result<(), Error> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    log.push("outer checkpoint passed");
    {
        let (ctx, _cancel) = ctx.with_timeout(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(500)).await;
        log.push("inner checkpoint passed");
    }
    // Out of the block, `ctx` is the parameter again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    log.push("outer again");
    let (ctx, _cancel) = ctx.with_timeout(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    log.push("unreachable: the shadowing context ends first");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn shadowing_ctx_narrows_the_checkpoints_that_follow() {
    let started = Instant::now();
    let mut log = Vec::new();
    let ctx = Context::background();
    assert_eq!(shadowed(&ctx, &mut log).await, Err(Error::DeadlineExceeded));
    assert_eq!(
        log,
        [
            "outer checkpoint passed",
            "inner checkpoint passed",
            "outer again"
        ]
    );
    assert_eq!(started.elapsed(), Duration::from_millis(5_500));
    assert!(!ctx.is_done());
}

/// Shadows the context it is given with a child that has a timeout.
macro_rules! narrow {
    ($ctx:ident, $timeout:expr) => {
        let ($ctx, _cancel) = $ctx.with_timeout($timeout);
    };
}

#[stage]
async fn narrowed_by_a_macro(work: Duration) -> Result<(), Error> {
    narrow!(ctx, Duration::from_secs(1));
    tokio::time::sleep(work).await;
    Ok(())
}

#[stage]
async fn narrowed_in_a_closure_call(work: Duration) -> Result<(), Error> {
    let run = |ctx: Context| ctx;
    let ctx = run(ctx.with_timeout(Duration::from_secs(1)).0);
    tokio::time::sleep(work).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_context_shadowed_by_a_macro_or_in_any_pattern_narrows_the_checkpoints() {
    let ctx = Context::background();
    let started = Instant::now();
    assert_eq!(
        narrowed_by_a_macro(&ctx, Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
    assert_eq!(
        narrowed_in_a_closure_call(&ctx, Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        narrowed_by_a_macro(&ctx, Duration::from_millis(10)).await,
        Ok(())
    );
}

#[stage]
async fn reassigned(mut parent: Context, work: Duration) -> Result<(), Error> {
    parent = parent.with_timeout(Duration::from_secs(1)).0;
    tokio::time::sleep(work).await;
    Ok(())
}

#[stage]
async fn replaced_in_place(parent: &mut Context, work: Duration) -> Result<(), Error> {
    *parent = parent.with_timeout(Duration::from_secs(1)).0;
    tokio::time::sleep(work).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_declared_context_changed_in_place_narrows_the_checkpoints() {
    let ctx = Context::background();
    assert_eq!(
        reassigned(ctx.clone(), Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
    let mut owned = ctx.clone();
    assert_eq!(
        replaced_in_place(&mut owned, Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
    assert!(owned.deadline().is_some());
}

#[stage]
async fn declared(parent: &Context, work: Duration) -> Result<(), Error> {
    // A function that declares its context keeps it, and its checkpoints use it.
    tokio::time::sleep(work).await;
    let _ = parent;
    Ok(())
}

#[stage(ctx = request)]
async fn renamed(work: Duration) -> Result<bool, Error> {
    tokio::time::sleep(work).await;
    Ok(request.deadline().is_some())
}

#[tokio::test(start_paused = true)]
async fn declared_and_renamed_contexts_drive_the_checkpoints() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    assert_eq!(
        declared(&ctx, Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_secs(1));
    assert_eq!(renamed(&ctx, Duration::from_millis(10)).await, Ok(true));
    assert_eq!(
        renamed(&ctx, Duration::from_secs(5)).await,
        Err(Error::DeadlineExceeded)
    );
}
