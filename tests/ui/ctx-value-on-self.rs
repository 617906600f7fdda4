use ctxpipe::{ctx_value, stage, Error};

#[ctx_value]
struct UserId(u64);

impl UserId {
    #[stage]
    async fn get(#[ctx_value] &self) -> Result<u64, Error> {
        Ok(self.0)
    }
}

fn main() {}
