use ctxpipe::{stage, Error};

struct Settings;

#[stage]
async fn load(ctx: Settings) -> Result<u32, Error> {
    let _ = ctx;
    Ok(1)
}

fn main() {}
