use ctxpipe::{stage, Error};

#[stage(ctx)]
async fn load() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
