#![deny(unused_must_use)]

use ctxpipe::{stage, Error};

async fn fallible() -> Result<u32, Error> {
    Ok(1)
}

// The warning is the user's, at the user's expression, as without `#[stage]`.
#[stage]
async fn ignores_a_result() -> Result<(), Error> {
    fallible().await;
    Ok(())
}

fn main() {}
