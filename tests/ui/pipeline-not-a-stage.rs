use ctxpipe::{pipeline, Error};

struct Db;

impl Db {
    async fn lookup(&self, n: u32) -> Result<u32, Error> {
        Ok(n)
    }
}

async fn run(db: Db) -> Result<usize, Error> {
    pipeline! {
        from 0..10u32
        => 42
        => db.lookup
        =>
        => count
    }
    .await
}

fn main() {
    let _ = run;
}
