use ctxpipe::{stage, Error};

#[stage]
async fn commit() -> Result<(), Error> {
    #[uninterruptible(always)]
    tokio::task::yield_now().await;
    Ok(())
}

fn main() {}
