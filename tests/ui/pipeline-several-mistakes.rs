use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn run() -> Result<Vec<u32>, Error> {
    pipeline! {
        deadline = Error;
        from ["a", "bb"]
        => parse [workers = 0, workers = 2, retries = 3]
        => [ordered]
        => parse [filter, flat]
        => colect
    }
    .await
}

fn main() {
    let _ = run;
}
