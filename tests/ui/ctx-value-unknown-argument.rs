use ctxpipe::ctx_value;

#[ctx_value(key = "user")]
struct UserId(u64);

fn main() {}
