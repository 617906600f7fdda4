use ctxpipe::{stage, Error};

#[stage]
async fn commit() -> Result<(), Error> {
    // A misspelt opt-out is an error, not an await left interruptible without a word.
    #[uninterruptable]
    tokio::task::yield_now().await;
    Ok(())
}

fn main() {}
