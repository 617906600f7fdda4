//! The pipeline runtime: a source, stages and a sink running as one structured unit under one
//! context. [`Pipeline`] documents the behaviour; the files here are its parts:
//!
//! - `builder.rs`: [`Pipeline`] itself, the stage methods and the sinks users call;
//! - `options.rs`: [`StageOptions`];
//! - `channel.rs`: the bounded queue between steps, which moves items in batches;
//! - `source.rs`: the task that feeds the first queue from an iterator or a stream;
//! - `stage.rs`: a stage's workers;
//! - `chunk.rs`: the step that groups items into `Vec`s by size or time;
//! - `calls.rs`: one batch of a stage's calls, polled as one future;
//! - `drain.rs`: [`Drain`], the graceful stop, and what it does to each run;
//! - `dead_letter.rs`: the task that hands failed items to a stage's dead-letter sink;
//! - `order.rs`: the reorder window of ordered stages;
//! - `keyed.rs`: keyed order, a lane per worker and the router that fills them;
//! - `policy.rs`: what a stage does about failed calls: [`OnError`], retries, [`Backoff`];
//! - `rate.rs`: [`Rate`], a stage's rate limit, and the token bucket its workers share;
//! - `sink.rs`: the sinks, and the loop that drives a run from the caller's future;
//! - `stream.rs`: [`PipelineStream`], the output as a `Stream`;
//! - `scope.rs`: the tasks of a run, the first error and panic, and what the run returns;
//! - `report.rs`: [`Progress`] and [`Report`];
//! - `located.rs`: [`Located`], sinks whose error says where it happened ([`RunError`]);
//! - `with_report.rs`: [`WithReport`], sinks that return the report with the result.

mod builder;
mod calls;
mod channel;
mod chunk;
mod dead_letter;
mod drain;
mod keyed;
mod located;
mod options;
mod order;
mod policy;
mod rate;
mod report;
mod scope;
mod sink;
mod source;
mod stage;
mod stream;
mod with_report;

pub use builder::Pipeline;
pub use drain::{Drain, DrainTimeout};
pub use keyed::{KeyHash, Keying, OrderedBy, Unkeyed};
pub use located::{Located, RunError};
pub use options::{StageOptions, DEFAULT_BATCH, DEFAULT_BUFFER};
pub use policy::{
    Backoff, BoxedSink, DeadLetter, DeadLetterSink, ItemError, Location, NoDeadLetter, NoRetry,
    OnError, RetryAll, RetryIf, RetryPolicy, Retrying, Timed, Timing, Untimed,
};
pub use rate::Rate;
pub use report::{Bottleneck, DrainOutcome, Drained, Progress, Report, SourceReport, StageReport};
pub use source::Source;
pub use stream::PipelineStream;
pub use with_report::WithReport;
