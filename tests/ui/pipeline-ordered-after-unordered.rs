use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn fetch(id: u32) -> Result<u32, Error> {
    Ok(id)
}

#[stage]
async fn save(id: u32) -> Result<u32, Error> {
    Ok(id)
}

async fn run() -> Result<Vec<u32>, Error> {
    pipeline! {
        from 0..10
        => fetch [workers = 8]
        => save [workers = 2, ordered]
        => collect
    }
    .await
}

fn main() {
    let _ = run;
}
