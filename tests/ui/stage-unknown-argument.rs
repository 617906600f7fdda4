use ctxpipe::{stage, Error};

#[stage(timeout = 5)]
async fn load() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
