use ctxpipe::stage;

#[stage]
async fn count(items: Vec<u32>) -> usize {
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    items.len()
}

fn main() {}
