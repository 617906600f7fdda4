use ctxpipe::stage;

#[stage]
async fn name(id: u32) -> Result<String, String> {
    tokio::task::yield_now().await;
    Ok(id.to_string())
}

fn main() {}
