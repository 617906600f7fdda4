use ctxpipe::ctx_value;

// The test crate is built without ctxpipe's `tower` feature.
#[ctx_value(baggage = "user-id")]
struct UserId(u64);

fn main() {}
