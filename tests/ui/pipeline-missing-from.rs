use ctxpipe::{pipeline, stage, Context, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn run(ctx: &Context) -> Result<Vec<u32>, Error> {
    let lines = ["a", "bb"];
    pipeline! {
        in ctx;
        lines
        => parse
        => collect
    }
    .await
}

fn main() {
    let _ = run;
}
