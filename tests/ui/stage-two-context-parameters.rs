use ctxpipe::{stage, Context, Error};

#[stage]
async fn load(request: &Context, parent: Context) -> Result<bool, Error> {
    Ok(request.is_done() || parent.is_done())
}

fn main() {}
