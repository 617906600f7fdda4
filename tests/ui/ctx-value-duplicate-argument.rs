use ctxpipe::ctx_value;

#[ctx_value(crate = ctxpipe, crate = ctxpipe)]
struct UserId(u64);

fn main() {}
