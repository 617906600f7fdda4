use ctxpipe::{stage, Error};

#[stage]
async fn load() -> Result<(), Error> {
    let ctx = "request";
    println!("{ctx}");
    tokio::task::yield_now().await;
    Ok(())
}

fn main() {}
