use ctxpipe::{stage, Error};

#[tracing::instrument]
#[stage]
async fn load(id: u32) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(id)
}

fn main() {}
