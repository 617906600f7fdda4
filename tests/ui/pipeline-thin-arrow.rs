use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn run() -> Result<Vec<u32>, Error> {
    pipeline! {
        from ["a", "bb"]
        -> parse [workers = 2]
        => collect
    }
    .await
}

fn main() {
    let _ = run;
}
