use ctxpipe::{pipeline, stage, Error};

#[derive(Debug)]
enum AppError {
    Context(Error),
}

impl From<Error> for AppError {
    fn from(err: Error) -> Self {
        AppError::Context(err)
    }
}

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

#[stage]
async fn check(n: u32) -> Result<u32, AppError> {
    Ok(n)
}

// `parse` decides the pipeline's error type, `ctxpipe::Error`, which `AppError` does not
// convert into: `error = AppError;` is needed.
async fn run() -> Result<usize, AppError> {
    let n = pipeline! {
        from ["a", "bb"]
        => parse
        => check
        => count
    }
    .await?;
    Ok(n)
}

fn main() {
    let _ = run;
}
