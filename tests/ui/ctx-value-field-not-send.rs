use std::rc::Rc;

use ctxpipe::ctx_value;

#[ctx_value]
struct Session {
    id: u64,
    user: Rc<String>,
}

fn main() {}
