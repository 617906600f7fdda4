use ctxpipe::ctx_value;

#[ctx_value]
fn user_id() -> u64 {
    7
}

fn main() {}
