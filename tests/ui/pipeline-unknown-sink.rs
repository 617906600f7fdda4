use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn misspelt() -> Result<Vec<u32>, Error> {
    pipeline! { from ["a"] => parse => colect }.await
}

async fn without_its_function() -> Result<(), Error> {
    pipeline! { from ["a"] => parse => for_each }.await
}

async fn fold_without_init() -> Result<u32, Error> {
    pipeline! { from ["a"] => parse => fold(|sum, n| sum + n) }.await
}

async fn with_options() -> Result<usize, Error> {
    pipeline! { from ["a"] => parse => count [ordered] }.await
}

fn main() {
    let _ = (misspelt, without_its_function, fold_without_init, with_options);
}
