use ctxpipe::{stage, Error};

#[stage(ctx = "parent")]
async fn load() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
