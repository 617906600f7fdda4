use ctxpipe::ctx_value;

#[ctx_value]
struct Tenant<'a> {
    name: &'a str,
}

fn main() {}
