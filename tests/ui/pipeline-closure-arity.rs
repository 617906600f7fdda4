use ctxpipe::{pipeline, Error};

async fn run() -> Result<Vec<u32>, Error> {
    pipeline! {
        error = Error;
        from 0..10_u32
        => |n: u32| async move { Ok(n + 1) }
        => |_ctx, n: u32, extra: u32| async move { Ok(n + extra) }
        => collect
    }
    .await
}

fn main() {
    let _ = run;
}
