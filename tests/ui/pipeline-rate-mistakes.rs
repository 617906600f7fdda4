use ctxpipe::{pipeline, Error};

async fn mistakes() -> Result<usize, Error> {
    pipeline! {
        from 0..10u32
        => |_ctx, n| async move { Ok::<_, Error>(n) } [rate]
        => |_ctx, n| async move { Ok::<_, Error>(n) } [rate = 0 / s]
        => |_ctx, n| async move { Ok::<_, Error>(n) } [rate = 5 / day]
        => |_ctx, n| async move { Ok::<_, Error>(n) } [burst = 3]
        => |_ctx, n| async move { Ok::<_, Error>(n) } [rate = 5 / s, burst = 0]
        => count
    }
    .await
}

fn main() {
    let _ = mistakes;
}
