use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn double(n: u32) -> Result<u32, Error> {
    Ok(n * 2)
}

async fn run() -> Result<Vec<u32>, Error> {
    pipeline! {
        from 0..3u32
        => double workers = 4
        => double, ordered
        => collect
    }
    .await
}

fn main() {
    let _ = run;
}
