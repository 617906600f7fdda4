//! A progress bar on stderr, drawn from the pipeline's [`Progress`] while it runs — only when
//! stderr is a terminal, so that redirected output stays clean.
//!
//! The walk runs ahead of the reads, so the files it has found so far are not all there are:
//! until it has been through the whole tree the bar only counts (`1234 files read, 5678 found
//! so far, 12.3 MiB`), and only once the total is known does it show how far the scan is.

use std::fmt::Write;
use std::future::Future;
use std::io::IsTerminal;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::{Progress, Report};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use crate::summary::human_bytes;
use crate::walk::Found;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// The bar's look while the walk goes on: counts, and no percentage of a total not yet known.
const COUNTING: &str = "{spinner} {elapsed:>3} {pos} files read, {len} found so far, {size}";

/// The bar's look once the walk has found every file.
const WITH_TOTAL: &str =
    "{spinner} {elapsed:>3} [{bar:30}] {done:>3}% {pos}/{len} files read, {size}";

/// Runs `run` to completion, showing on stderr, if it is a terminal, how many of the files the
/// walk has `found` the pipeline of `progress` has read, and the `bytes_read`.
pub async fn while_running<F: Future>(
    progress: &Progress,
    found: &Found,
    bytes_read: &AtomicU64,
    run: F,
) -> F::Output {
    if !std::io::stderr().is_terminal() {
        return run.await;
    }
    let mut bar = Bar::new();
    let mut ticks = tokio::time::interval(TICK);
    let mut run = pin!(run);
    let output = loop {
        tokio::select! {
            output = &mut run => break output,
            _ = ticks.tick() => bar.show(&progress.report(), found, bytes_read),
        }
    };
    bar.clear();
    output
}

/// The bar on stderr, and what it shows besides its position and length.
struct Bar {
    bar: ProgressBar,
    /// The bytes read, shown through a template key: the bar then changes in one update, and
    /// never draws a frame that mixes old and new counts.
    bytes: Arc<AtomicU64>,
    /// Whether the bar knows the total, and has the style that shows it.
    total_known: bool,
}

impl Bar {
    /// A bar that counts, until [`show`](Bar::show) learns the total.
    fn new() -> Bar {
        let bytes = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::no_length().with_style(style(COUNTING, bytes.clone()));
        Bar {
            bar,
            bytes,
            total_known: false,
        }
    }

    /// Shows the files the `read` stage is done with (read, or skipped) out of those
    /// `found`, with a percentage once the walk has found them all.
    fn show(&mut self, report: &Report, found: &Found, bytes_read: &AtomicU64) {
        let read = report
            .stage("read")
            .map_or(0, |stage| stage.items_out + stage.errors);
        let total = found.total();
        if total.is_some() && !self.total_known {
            self.total_known = true;
            self.bar.set_style(style(WITH_TOTAL, self.bytes.clone()));
        }
        let len = total.unwrap_or_else(|| found.so_far());
        // Relaxed: statistics, only shown.
        let bytes = bytes_read.load(Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        self.bar.update(|state| {
            state.set_len(len);
            // The counters are read one after another: never show more files read than found.
            state.set_pos(read.min(len));
        });
    }

    /// Takes the bar off the terminal.
    fn clear(self) {
        self.bar.finish_and_clear();
    }
}

/// The style of `template`, whose `{size}` shows `bytes` and `{done}` the percentage done.
fn style(template: &str, bytes: Arc<AtomicU64>) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("size", move |_: &_, out: &mut dyn Write| {
            let _ = write!(out, "{}", human_bytes(bytes.load(Ordering::Relaxed)));
        })
        .with_key("done", |state: &ProgressState, out: &mut dyn Write| {
            let _ = write!(out, "{}", percent(state.pos(), state.len()));
        })
        .progress_chars("=> ")
}

/// `pos` of `len` in whole percent, rounded down: indicatif's `{percent}` rounds, and shows
/// 100% with files still to read. Nothing of nothing is all of it; of an unknown length, none.
fn percent(pos: u64, len: Option<u64>) -> u64 {
    match len {
        Some(0) => 100,
        Some(len) => pos.min(len) * 100 / len,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_rounded_down_so_that_100_means_done() {
        assert_eq!(percent(2170, Some(2184)), 99);
        assert_eq!(percent(2184, Some(2184)), 100);
        assert_eq!(percent(1, Some(3)), 33);
        assert_eq!(percent(0, Some(0)), 100);
        assert_eq!(percent(7, None), 0);
    }
}
