use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn run(deadline: std::time::Duration) -> Result<usize, Error> {
    pipeline! {
        in deadline;
        from ["a", "bb"]
        => parse
        => count
    }
    .await
}

fn main() {
    let _ = run;
}
