use ctxpipe::{stage, Error};

#[stage(ctx = parent, ctx = request)]
async fn load() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
