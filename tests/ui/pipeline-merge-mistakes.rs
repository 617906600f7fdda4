use ctxpipe::{pipeline, Error};

async fn empty_source() -> Result<usize, Error> {
    pipeline! {
        from 0..10u32, , 20..30u32
        => count
    }
    .await
}

fn main() {
    let _ = empty_source;
}
