use ctxpipe::{stage, Error};

#[stage]
async fn commit(log: &mut Vec<u32>) -> Result<(), Error> {
    #[uninterruptible]
    log.push(1);
    tokio::task::yield_now().await;
    Ok(())
}

fn main() {}
