//! The runtime of [ctxpipe](https://docs.rs/ctxpipe): Go's `context` for tokio — a cancellation
//! tree, deadlines that flow downward and a request-scoped bag of typed values.
//!
//! Most users depend on the `ctxpipe` facade, which re-exports everything here together with
//! the `#[stage]` and `pipeline!` macros.
//!
//! ```
//! use std::time::Duration;
//! use ctxpipe::{Context, Error};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let (request, cancel) = Context::background().with_timeout(Duration::from_secs(2));
//! let (step, _) = request.with_timeout(Duration::from_secs(5));
//! assert_eq!(step.deadline(), request.deadline(), "a child never outlives its parent");
//!
//! cancel.cancel();
//! assert_eq!(step.err(), Some(Error::Canceled), "cancellation reaches every descendant");
//! assert_eq!(step.run(std::future::pending::<()>()).await, Err(Error::Canceled));
//! # }
//! ```
//!
//! See [`Context`] for the whole API and its Go equivalents.
#![warn(missing_docs, unreachable_pub)]
#![doc(test(attr(deny(warnings))))]

mod after_func;
mod cause;
mod context;
mod ctx_value;
mod done;
mod error;
mod loom;
mod slab;
mod timer;
mod tree;
mod values;

pub use after_func::AfterFunc;
pub use cause::Cause;
pub use context::{CancelHandle, Context, DropGuard};
pub use ctx_value::CtxValue;
pub use done::{Done, Run, Watch};
pub use error::Error;
