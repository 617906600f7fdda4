//! The error type of a stage: any `E: From<ctxpipe::Error>`, also through aliases.

use std::io;
use std::time::Duration;

use ctxpipe::{ctx_value, stage, Context, Error};

#[ctx_value]
struct Token(&'static str);

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error(transparent)]
    Context(#[from] Error),
    #[error("not found: {0}")]
    NotFound(u32),
}

#[stage]
async fn with_anyhow(fail: bool) -> anyhow::Result<u32> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    anyhow::ensure!(!fail, "asked to fail");
    Ok(1)
}

#[stage]
async fn with_io(#[ctx_value] token: &Token) -> io::Result<usize> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(token.0.len())
}

#[stage]
async fn with_thiserror(id: u32) -> Result<u32, AppError> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    if id == 0 {
        return Err(AppError::NotFound(id));
    }
    Ok(id)
}

#[stage]
async fn with_boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn anyhow_errors_carry_the_context_error() {
    let ctx = Context::background();
    assert_eq!(with_anyhow(&ctx, false).await.unwrap(), 1);
    assert!(with_anyhow(&ctx, true).await.is_err());

    let (short, _) = ctx.with_timeout(Duration::from_secs(1));
    let err = with_anyhow(&short, false).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn io_errors_map_the_context_error_to_a_kind() {
    let ctx = Context::background().with_value(Token("abc"));
    assert_eq!(with_io(&ctx).await.unwrap(), 3);

    let (short, _) = ctx.with_timeout(Duration::from_secs(1));
    assert_eq!(
        with_io(&short).await.unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );

    let (cancelled, cancel) = ctx.with_cancel();
    cancel.cancel();
    assert_eq!(
        with_io(&cancelled).await.unwrap_err().kind(),
        io::ErrorKind::Interrupted
    );

    let missing = with_io(&Context::background()).await.unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    let inner = missing.get_ref().and_then(|e| e.downcast_ref::<Error>());
    assert!(
        matches!(inner, Some(Error::MissingValue { type_name }) if type_name.contains("Token"))
    );
}

#[tokio::test(start_paused = true)]
async fn thiserror_enums_convert_from_the_context_error() {
    let ctx = Context::background();
    assert_eq!(with_thiserror(&ctx, 3).await.unwrap(), 3);
    assert!(matches!(
        with_thiserror(&ctx, 0).await,
        Err(AppError::NotFound(0))
    ));

    let (cancelled, cancel) = ctx.with_cancel();
    cancel.cancel();
    assert!(matches!(
        with_thiserror(&cancelled, 3).await,
        Err(AppError::Context(Error::Canceled))
    ));
}

#[tokio::test(start_paused = true)]
async fn boxed_errors_work_too() {
    let (short, _) = Context::background().with_timeout(Duration::from_secs(1));
    let err = with_boxed(&short).await.unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::DeadlineExceeded));
}
