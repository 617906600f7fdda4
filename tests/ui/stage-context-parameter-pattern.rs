use ctxpipe::{stage, Context, Error};

#[stage]
async fn load(ctx @ _: Context) -> Result<bool, Error> {
    Ok(ctx.is_done())
}

fn main() {}
