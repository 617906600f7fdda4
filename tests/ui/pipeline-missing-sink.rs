use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn after_a_stage() -> Result<Vec<u32>, Error> {
    pipeline! {
        from ["a", "bb"]
        => parse [workers = 2]
    }
    .await
}

async fn after_the_source() -> Result<Vec<u32>, Error> {
    pipeline! {
        from ["a", "bb"]
    }
    .await
}

fn main() {
    let _ = (after_a_stage, after_the_source);
}
