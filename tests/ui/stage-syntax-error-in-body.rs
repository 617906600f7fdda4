// A body that does not parse: rustc reports the user's syntax error, and the stage's
// signature is still emitted for its callers.
use ctxpipe::{stage, Context, Error};

#[stage]
async fn load(id: u32) -> Result<u32, Error> {
    let doubled = id * ;
    Ok(doubled)
}

async fn caller(ctx: &Context) -> Result<u32, Error> {
    load(ctx, 1).await
}

fn main() {
    let _ = caller;
}
