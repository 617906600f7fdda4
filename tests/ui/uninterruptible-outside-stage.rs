async fn commit() {
    #[uninterruptible]
    tokio::task::yield_now().await;
}

fn main() {}
