use ctxpipe::{pipeline, Error, PipelineStream};

async fn with_report() {
    let _ = pipeline! {
        report;
        located;
        from 0..10u32
        => |_ctx, n| async move { Ok::<_, Error>(n) }
        => count
    }
    .await;
}

fn with_stream() -> PipelineStream<u32, Error> {
    pipeline! {
        located;
        from 0..10u32
        => stream
    }
}

fn main() {
    let _ = (with_report, with_stream);
}
