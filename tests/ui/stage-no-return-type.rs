use ctxpipe::stage;

#[stage]
async fn notify(id: u32) {
    let _ = id;
}

fn main() {}
