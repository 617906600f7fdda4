use std::cell::Cell;

use ctxpipe::ctx_value;

#[ctx_value]
enum Budget {
    Unlimited,
    Remaining { left: Cell<u32> },
}

fn main() {}
