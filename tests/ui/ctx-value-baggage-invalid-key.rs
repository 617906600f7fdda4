use ctxpipe::ctx_value;

#[ctx_value(baggage = "user id")]
struct UserId(u64);

#[ctx_value(baggage = "")]
struct Tenant(String);

fn main() {}
