use ctxpipe::{ctx_value, stage, Error};

#[ctx_value]
struct UserId(u64);

#[ctx_value]
struct Tenant(String);

#[stage]
async fn load<'a, 'b>(
    #[ctx_value] user: &'a UserId,
    #[ctx_value] tenant: &'b Tenant,
) -> Result<(&'a UserId, &'b Tenant), Error> {
    Ok((user, tenant))
}

fn main() {}
