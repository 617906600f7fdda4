use ctxpipe::{pipeline, Error, PipelineStream};

fn with_report() -> PipelineStream<u32, Error> {
    pipeline! {
        report;
        from 0..10u32
        => stream
    }
}

fn with_arguments() -> PipelineStream<u32, Error> {
    pipeline! {
        from 0..10u32
        => stream(8)
    }
}

fn main() {
    let _ = (with_report, with_arguments);
}
