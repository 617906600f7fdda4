// The mistake is reported once: callers still see the stage's signature, so they compile.
use ctxpipe::{ctx_value, stage, Context, Error};

#[ctx_value]
struct UserId(u64);

#[stage(retry = 3)]
async fn load(#[ctx_value] user: &UserId, extra: u64) -> Result<u64, Error> {
    tokio::task::yield_now().await;
    Ok(user.0 + extra + ctx.is_done() as u64)
}

async fn caller(ctx: &Context) -> Result<u64, Error> {
    load(ctx, 1).await
}

fn main() {
    let _ = caller;
}
