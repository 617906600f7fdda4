use ctxpipe::{pipeline, Error};

async fn mistakes() -> Result<usize, Error> {
    pipeline! {
        from 0..10u32
        => |_ctx, n| async move { Ok::<_, Error>(n) } [workers = 4, ordered_by]
        => |_ctx, n| async move { Ok::<_, Error>(n) } [workers = 4, ordered, ordered_by = |n: &u32| n % 3]
        => count
    }
    .await
}

fn main() {
    let _ = mistakes;
}
