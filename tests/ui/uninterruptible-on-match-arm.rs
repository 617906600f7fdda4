use ctxpipe::{stage, Error};

#[stage]
async fn commit(retry: bool) -> Result<(), Error> {
    match retry {
        #[uninterruptible]
        true => tokio::task::yield_now().await,
        false => {}
    }
    Ok(())
}

fn main() {}
