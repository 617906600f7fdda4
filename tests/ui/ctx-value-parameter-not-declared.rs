use ctxpipe::{stage, Error};

struct UserId(u64);

#[stage]
async fn load(#[ctx_value] user: &UserId) -> Result<u64, Error> {
    Ok(user.0)
}

fn main() {}
