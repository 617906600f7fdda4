use ctxpipe::{stage, Error};

#[stage(loops = true)]
async fn with_value(n: u64) -> Result<u64, Error> {
    Ok(n)
}

#[stage(loops, loops)]
async fn twice(n: u64) -> Result<u64, Error> {
    Ok(n)
}

fn main() {}
