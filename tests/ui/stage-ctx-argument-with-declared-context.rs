use ctxpipe::{stage, Context, Error};

#[stage(ctx = parent)]
async fn load(request: &Context) -> Result<bool, Error> {
    Ok(request.is_done())
}

fn main() {}
