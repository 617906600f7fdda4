use ctxpipe::{stage, Error};

#[stage]
async fn commit() -> Result<(), Error> {
    let work = async {
        #[uninterruptible]
        tokio::task::yield_now().await;
    };
    work.await;
    Ok(())
}

fn main() {}
