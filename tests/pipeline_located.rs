//! A run's error that says where it happened: the stage, the item and the attempt.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use ctxpipe::{pipeline, Backoff, Context, Error, Pipeline, RunError, StageOptions};

/// A card error whose source is the gateway's reply, to check the chain.
#[derive(Debug)]
enum ChargeError {
    Context(Error),
    Declined(Reply),
}

#[derive(Debug)]
struct Reply(&'static str);

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gateway said {:?}", self.0)
    }
}

impl std::error::Error for Reply {}

impl fmt::Display for ChargeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChargeError::Context(err) => err.fmt(f),
            ChargeError::Declined(_) => f.write_str("card declined"),
        }
    }
}

impl std::error::Error for ChargeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChargeError::Context(err) => Some(err),
            ChargeError::Declined(reply) => Some(reply),
        }
    }
}

impl From<Error> for ChargeError {
    fn from(err: Error) -> Self {
        ChargeError::Context(err)
    }
}

async fn charge(id: u64) -> Result<u64, ChargeError> {
    if id == 17 {
        return Err(ChargeError::Declined(Reply("insufficient funds")));
    }
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn the_error_names_the_stage_the_item_and_the_attempt() {
    let stage = StageOptions::new("charge")
        .retry(2)
        .backoff(Backoff::fixed(Duration::from_millis(1)));
    let err: RunError<ChargeError> = Pipeline::new(&Context::background(), 0..100u64)
        .map(stage, |_ctx, id| charge(id))
        .located()
        .count()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `charge`, item #17 (attempt 3 of 3): card declined"
    );
    let at = err.location().expect("an item failed the run");
    assert_eq!((at.stage.as_ref(), at.item, at.attempt), ("charge", 17, 3));
    // The chain goes on with the error's own source.
    assert_eq!(
        err.source().map(ToString::to_string).as_deref(),
        Some("gateway said \"insufficient funds\"")
    );
    assert!(matches!(err.error(), ChargeError::Declined(_)));

    // Whole, into anyhow, and back.
    let any = anyhow::Error::from(err);
    let chain: Vec<String> = any.chain().map(ToString::to_string).collect();
    assert_eq!(chain.len(), 2, "{chain:?}");
    let back = any.downcast::<RunError<ChargeError>>().unwrap();
    assert!(matches!(back.into_error(), ChargeError::Declined(_)));
}

#[tokio::test(start_paused = true)]
async fn a_run_that_no_item_failed_has_no_location() {
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(5));
    let err = Pipeline::<_, ChargeError>::new(&ctx, 0..u64::MAX)
        .map("slow", |ctx, id| async move {
            ctx.run(tokio::time::sleep(Duration::from_secs(1))).await?;
            Ok(id)
        })
        .located()
        .count()
        .await
        .unwrap_err();
    assert_eq!(err.location(), None);
    assert_eq!(err.to_string(), "context deadline exceeded");

    let err = Pipeline::<_, ChargeError>::new(&Context::background(), 0..3u64)
        .located()
        .try_for_each(|_| async { Err(ChargeError::Declined(Reply("no"))) })
        .await
        .unwrap_err();
    assert_eq!(err.location(), None, "the sink's error is no item's");
    assert_eq!(err.to_string(), "card declined");
}

#[tokio::test]
async fn the_macro_takes_located() {
    let err = pipeline! {
        located;
        from ["1", "2", "x"]
        => |_ctx, line: &'static str| async move {
            line.parse::<u32>().map_err(|_| Error::MissingValue { type_name: "a number" })
        } [name = "parse"]
        => collect
    }
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `parse`, item #2: context value `a number` is missing"
    );
}
