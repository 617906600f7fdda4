use ctxpipe::{pipeline, stage, Error};

#[stage]
async fn parse(line: &'static str) -> Result<u32, Error> {
    Ok(line.len() as u32)
}

async fn options() -> Result<Vec<u32>, Error> {
    pipeline! {
        from ["a", "bb"]
        => parse [on_error = ignore, retry = -1]
        => parse [name = "again", retry = "3", on_error]
        => |_ctx, n: u32| async move { Ok(n) } [retry_if = |_: &Error| true, timeout]
        => |_ctx, n: u32| async move { Ok(n) } [backoff = ctxpipe::Backoff::default()]
        => |_ctx, n: u32| async move { Ok(n) } [on_error = dead_letter(a, b)]
        => collect
    }
    .await
}

async fn headers() -> Result<Vec<u32>, Error> {
    pipeline! {
        ordered = yes;
        report(full);
        on_error = maybe;
        from ["a", "bb"]
        => parse
        => collect
    }
    .await
}

async fn dead_letter_header() -> Result<Vec<u32>, Error> {
    pipeline! {
        on_error = dead_letter(|_: &str, _| async { Ok(()) });
        from ["a", "bb"]
        => parse
        => collect
    }
    .await
}

fn main() {
    let _ = (options, headers, dead_letter_header);
}
