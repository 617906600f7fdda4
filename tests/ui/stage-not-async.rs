use ctxpipe::{stage, Error};

#[stage]
fn load() -> Result<u32, Error> {
    Ok(1)
}

fn main() {}
