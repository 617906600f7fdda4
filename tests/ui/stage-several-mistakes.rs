use ctxpipe::{ctx_value, stage};

#[ctx_value]
struct UserId(u64);

#[stage(retries = 3)]
fn load(#[ctx_value] user: UserId, ctx: u8) {
    #[uninterruptible]
    let _ = (user.0, ctx);
}

fn main() {}
