//! A progress bar on stderr, drawn from the pipeline's [`Progress`] while it runs — only when
//! stderr is a terminal, so that redirected output stays clean.

use std::future::Future;
use std::io::IsTerminal;
use std::pin::pin;
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
    let bar = ProgressBar::new(0).with_style(style());
    let mut ticks = tokio::time::interval(TICK);
    let mut run = pin!(run);
    let output = loop {
        tokio::select! {
            output = &mut run => break output,
            _ = ticks.tick() => show(&bar, &progress.report()),
        }
    };
    bar.finish_and_clear();
    output
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner} {elapsed:>3} [{bar:30}] {pos}/{len} files analysed, {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Files found so far are the bar's length; files through the `analyse` stage its position.
fn show(bar: &ProgressBar, report: &Report) {
    let done = |name| report.stage(name).map_or(0, |stage| stage.items_in);
    bar.set_length(report.produced);
    bar.set_position(done("analyse"));
    bar.set_message(format!("{} read", done("read")));
}
