use ctxpipe::{stage, Error};

trait Load {
    #[stage]
    async fn load(&self) -> Result<u32, Error>;
}

fn main() {}
