use ctxpipe::{stage, Error};

struct Request {
    ctx: u32,
    id: u32,
}

// A binding named like the context anywhere in a parameter's pattern, raw or not.
#[stage]
async fn destructured(Request { ctx, id }: Request) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(ctx + id)
}

#[stage]
async fn raw(r#ctx: u32) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(r#ctx)
}

fn main() {}
