//! A progress bar on stderr, drawn from the pipeline's [`Progress`] while it runs — only when
//! stderr is a terminal, so that redirected output stays clean.

use std::fmt::Write;
use std::future::Future;
use std::io::IsTerminal;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxpipe::{Progress, Report};
use indicatif::{ProgressBar, ProgressStyle};

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Runs `run` to completion, showing its progress on stderr if stderr is a terminal.
pub async fn while_running<F: Future>(progress: &Progress, run: F) -> F::Output {
    if !std::io::stderr().is_terminal() {
        return run.await;
    }
    // The files read so far, shown through a template key: the bar then changes in one
    // update, and never draws a frame that mixes old and new counts.
    let read = Arc::new(AtomicU64::new(0));
    let bar = ProgressBar::new(0).with_style(style(read.clone()));
    let mut ticks = tokio::time::interval(TICK);
    let mut run = pin!(run);
    let output = loop {
        tokio::select! {
            output = &mut run => break output,
            _ = ticks.tick() => show(&bar, &read, &progress.report()),
        }
    };
    bar.finish_and_clear();
    output
}

fn style(read: Arc<AtomicU64>) -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {elapsed:>3} [{bar:30}] {pos}/{len} files analysed, {read} read",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("read", move |_: &_, out: &mut dyn Write| {
        let _ = write!(out, "{}", read.load(Ordering::Relaxed));
    })
    .progress_chars("=> ")
}

/// Files found so far are the bar's length; files through the `analyse` stage its position.
fn show(bar: &ProgressBar, read: &AtomicU64, report: &Report) {
    let done = |name| report.stage(name).map_or(0, |stage| stage.items_in);
    read.store(done("read"), Ordering::Relaxed);
    bar.update(|state| {
        state.set_len(report.produced);
        state.set_pos(done("analyse"));
    });
}
