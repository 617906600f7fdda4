use ctxpipe::{pipeline, stage, Context, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn unknown_and_duplicate(ctx: &Context) -> Result<usize, Error> {
    pipeline! {
        in ctx;
        deadline = Error;
        in ctx;
        error Error;
        drained_by;
        from ["a", "bb"]
        => parse
        => count
    }
    .await
}

async fn no_semicolon(ctx: &Context) -> Result<usize, Error> {
    pipeline! {
        in ctx
        from ["a", "bb"]
        => parse
        => count
    }
    .await
}

async fn nothing() -> Result<usize, Error> {
    pipeline! {}.await
}

fn main() {
    let _ = (unknown_and_duplicate, no_semicolon, nothing);
}
