use ctxpipe::stage;

#[stage]
struct Loader;

fn main() {}
