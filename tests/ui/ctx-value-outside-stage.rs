use ctxpipe::{ctx_value, Error};

#[ctx_value]
struct UserId(u64);

async fn load(#[ctx_value] user: &UserId) -> Result<u64, Error> {
    Ok(user.0)
}

fn main() {}
