use ctxpipe::{stage, Error};

#[stage(crate = "ctxpipe")]
async fn load() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
