use ctxpipe::{pipeline, Error};

async fn mistakes() -> Result<(), Error> {
    pipeline! {
        from 0..10
        => chunk()
        => chunk(within = std::time::Duration::from_millis(5))
        => chunk(10, after = std::time::Duration::from_millis(5))
        => chunk(10, within = std::time::Duration::from_millis(5), 3)
        => chunk(4) [workers = 2]
        => count
    }
    .await?;
    Ok(())
}

fn main() {
    let _ = mistakes;
}
