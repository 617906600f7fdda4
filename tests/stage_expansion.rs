//! What the expansion rewrites: every `.await` of the stage's own body, wherever it sits, and
//! nothing else; and the expansion is hygienic (it names std through `::core`, our runtime
//! through `crate = path`, and causes no lint).
#![deny(
    warnings,
    unused_qualifications,
    unused_parens,
    unused_braces,
    unused_results
)]
#![deny(unused_lifetimes, single_use_lifetimes, elided_lifetimes_in_paths)]
#![deny(clippy::all)]

use std::cell::Cell;
use std::future::ready;

use ctxpipe::{ctx_value, stage, Context, Error};

/// Generated code must not resolve `core` to this module.
mod core {}

/// A runtime that counts checkpoints: `#[stage(crate = crate::counting)]` must name it.
mod counting {
    pub mod __private {
        pub use ::ctxpipe::__private::*;

        use std::cell::Cell;
        use std::future::IntoFuture;

        thread_local! {
            pub static CHECKPOINTS: Cell<usize> = const { Cell::new(0) };
            /// Those of them on the stage's own context, without a comparison.
            pub static WATCHED: Cell<usize> = const { Cell::new(0) };
        }

        pub fn checkpoint<'a, F: IntoFuture>(
            future: F,
            ctx: &'a Context,
            watch: &'a mut Watch,
        ) -> Checkpoint<'a, F::IntoFuture> {
            CHECKPOINTS.with(|count| count.set(count.get() + 1));
            ::ctxpipe::__private::checkpoint(future, ctx, watch)
        }

        pub fn watched<F: IntoFuture, W: Watcher>(
            future: F,
            watch: &mut W,
        ) -> Checkpoint<'_, F::IntoFuture, W> {
            CHECKPOINTS.with(|count| count.set(count.get() + 1));
            WATCHED.with(|count| count.set(count.get() + 1));
            ::ctxpipe::__private::watched(future, watch)
        }
    }

    pub fn take() -> usize {
        __private::WATCHED.with(|count| count.set(0));
        __private::CHECKPOINTS.with(|count| count.replace(0))
    }

    /// The checkpoints since the last call, and how many of them were on the stage's own
    /// context without a comparison.
    pub fn take_both() -> (usize, usize) {
        let watched = __private::WATCHED.with(|count| count.replace(0));
        (take(), watched)
    }
}

#[ctx_value(crate = crate::counting)]
struct Limit(u32);

#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
struct None;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;

async fn num(n: u32) -> u32 {
    n
}

async fn fallible(n: u32) -> Result<u32, Error> {
    Result::Ok(n)
}

/// Seventeen awaits of the stage's own body, in every kind of place.
#[stage(crate = crate::counting)]
async fn everywhere(#[ctx_value] limit: &Limit, flag: bool) -> Result<u32, Error> {
    let mut total = num(1).await; // 1
    total += match num(2).await {
        // 2
        2 => num(3).await, // 3
        _ => 0,
    };
    if num(4).await > 0 {
        // 4
        total += num(5).await; // 5
    } else {
        total += num(100).await;
    }
    for _ in 0..2 {
        total += num(1).await; // 6, 7
    }
    let mut n = 0;
    while n < 1 {
        n += num(1).await; // 8
    }
    let mut spins = 0;
    total += loop {
        spins += 1;
        if spins > 1 {
            break num(1).await; // 9
        }
    };
    total += fallible(fallible(1).await?).await?; // 10, 11
    total += {
        let inner = { num(1).await }; // 12
        inner
    };
    let mut list = vec![num(1).await, num(1).await]; // 13, 14
    let mut repeated = vec![num(1).await; 2]; // 15
    list.append(&mut repeated);
    total += list.iter().sum::<u32>();
    let text = format!("{}", num(1).await); // 16
    assert_eq!(num(1).await, 1); // 17
    total += u32::from(text == "1");
    // Not checkpoints: closures, async blocks, nested items, quoting macros, opted out.
    let closure = |n: u32| async move { num(n).await };
    let block = async { num(1).await };
    async fn nested_item() -> u32 {
        num(1).await
    }
    let spelled = stringify!(num(1).await);
    assert!(num(1).await == 1, "quoted by `assert!`: not a checkpoint");
    let kept = #[uninterruptible]
    closure(1).await;
    #[uninterruptible]
    let from_block = block.await;
    #[uninterruptible]
    {
        total += nested_item().await;
    }
    total += kept + from_block + u32::from(spelled == "num(1).await");
    let _ = flag;
    Result::Ok(total.min(limit.0))
}

#[tokio::test]
async fn every_await_of_the_body_is_a_checkpoint_and_nothing_else() {
    let ctx = Context::background().with_value(Limit(1000));
    let _ = counting::take();
    assert_eq!(everywhere(&ctx, true).await, Result::Ok(23));
    assert_eq!(counting::take(), 17);
}

#[stage(crate = crate::counting)]
async fn cancelled_midway(cancel: ctxpipe::CancelHandle, reached: &Cell<u32>) -> Result<(), Error> {
    reached.set(num(1).await);
    cancel.cancel();
    let mut values = vec![num(2).await];
    values.push(3);
    reached.set(values[0]);
    Result::Ok(())
}

#[tokio::test]
async fn checkpoints_inside_macro_arguments_end_the_stage() {
    let (ctx, cancel) = Context::background().with_cancel();
    let reached = Cell::new(0);
    assert_eq!(
        cancelled_midway(&ctx, cancel, &reached).await,
        Result::Err(Error::Canceled)
    );
    assert_eq!(reached.get(), 1);
    assert_eq!(counting::take(), 2);
}

#[stage]
async fn hygienic<'a>(#[ctx_value] limit: Option<&'a Limit>, s: &'a str) -> Result<&'a str, Error> {
    let __value = ready(1).await;
    let __error = ready(2).await;
    let __ctx = ready(3).await;
    assert_eq!((__value, __error, __ctx), (1, 2, 3));
    Result::Ok(match limit {
        Option::Some(_) => s,
        Option::None => "",
    })
}

#[tokio::test]
async fn generated_names_do_not_clash_with_the_users() {
    let ctx = Context::background().with_value(Limit(1));
    assert_eq!(hygienic(&ctx, "x").await, Result::Ok("x"));
}

#[stage(crate = crate::counting)]
async fn attributed(ran: &Cell<u32>) -> Result<(), Error> {
    #[cfg(not(test))]
    ran.set(ran.get() + num(100).await);
    #[cfg(test)]
    ran.set(ran.get() + num(1).await);
    #[cfg(not(test))]
    num(100).await;
    #[allow(unused_must_use)]
    fallible(1).await;
    let list = [
        #[cfg(not(test))]
        num(100).await,
        num(2).await,
    ];
    ran.set(ran.get() + list.iter().sum::<u32>());
    Result::Ok(())
}

#[tokio::test]
async fn attributes_on_an_await_stay_on_its_checkpoint() {
    let ran = Cell::new(0);
    let _ = counting::take();
    assert_eq!(
        attributed(&Context::background(), &ran).await,
        Result::Ok(())
    );
    // Only the awaits that `cfg` keeps ran, and each is a checkpoint.
    assert_eq!(ran.get(), 3);
    assert_eq!(counting::take(), 3);
}

#[stage(crate = crate::counting)]
async fn never_rebinds(log: &Cell<u32>) -> Result<u32, Error> {
    println!("{}", log.get());
    let sum = num(1).await + num(2).await;
    Result::Ok(unknown!(sum))
}

#[stage(crate = crate::counting)]
async fn rebinds() -> Result<u32, Error> {
    let first = num(1).await;
    let (ctx, _cancel) = ctx.with_cancel();
    let _ = &ctx;
    Result::Ok(first + num(2).await)
}

/// A macro the stage does not know, used as an expression without `ctx` or an await.
macro_rules! unknown {
    ($value:expr) => {
        $value
    };
}
use unknown;

#[tokio::test]
async fn a_body_that_never_rebinds_ctx_checks_the_watched_context() {
    let ctx = Context::background();
    let _ = counting::take();
    assert_eq!(never_rebinds(&ctx, &Cell::new(0)).await, Result::Ok(3));
    assert_eq!(counting::take_both(), (2, 2));
    assert_eq!(rebinds(&ctx).await, Result::Ok(3));
    assert_eq!(counting::take_both(), (2, 0));
}
