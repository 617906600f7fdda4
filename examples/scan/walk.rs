//! The pipeline's source: a walk of the directory tree on a blocking thread, handing the files
//! it finds to the pipeline as a `Stream`.
//!
//! `std::fs` blocks, so the walk runs under `spawn_blocking` and sends what it finds through a
//! bounded channel: it runs ahead of the readers by at most the channel's capacity, and stops
//! as soon as the scan's context is done or the pipeline has stopped listening. It counts the
//! files it finds as it goes ([`Found`]), for the progress bar.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::{fs, io};

use ctxpipe::{Context, Error};
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Reason, ScanConfig, Skipped};

/// How many found paths may wait for the pipeline to take them.
const AHEAD: usize = 256;

/// Starts walking the tree of the [`ScanConfig`] in `ctx`: returns the stream of what it finds
/// and the walk itself, to join once the pipeline is over.
pub(crate) fn spawn(ctx: &Context) -> (Files, Walk) {
    let (sender, files) = mpsc::channel(AHEAD);
    let ctx = ctx.clone();
    let found = Arc::new(Found::default());
    let counter = found.clone();
    let walk = tokio::task::spawn_blocking(move || walk(&ctx, &sender, &counter));
    (Files(files), Walk { walk, found })
}

/// How many files the walk has found, and whether that is all of them: shared by the walk's
/// thread, which counts, and the progress bar, which reads.
#[derive(Debug, Default)]
pub(crate) struct Found {
    files: AtomicU64,
    /// Set once the walk has been through the whole tree; never when it stops early.
    complete: AtomicBool,
}

impl Found {
    /// The files found so far.
    pub(crate) fn so_far(&self) -> u64 {
        // Relaxed: a count to show; `total` is the one that must be final.
        self.files.load(Ordering::Relaxed)
    }

    /// Every file in the tree, once the walk has been through all of it; `None` before.
    pub(crate) fn total(&self) -> Option<u64> {
        // Acquire: pairs with the Release store in `mark_complete`, so that the count read
        // after it includes every file the walk found.
        if self.complete.load(Ordering::Acquire) {
            Some(self.files.load(Ordering::Relaxed))
        } else {
            None
        }
    }

    /// Counts one more file.
    fn add(&self) {
        // Relaxed: `mark_complete` publishes the final count.
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Says the count is final: the walk has been through the whole tree.
    fn mark_complete(&self) {
        // Release: the counts before it are visible to whoever sees it (see `total`).
        self.complete.store(true, Ordering::Release);
    }
}

/// The files the walk finds, as a stream: it ends when the walk does.
pub(crate) struct Files(mpsc::Receiver<PathBuf>);

impl Stream for Files {
    type Item = PathBuf;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<PathBuf>> {
        self.0.poll_recv(cx)
    }
}

/// What the walk did besides finding files.
pub(crate) struct Walked {
    /// How many directories it listed.
    pub(crate) directories: u64,
    /// The directories it could not list, and why.
    pub(crate) unlisted: Vec<Skipped>,
}

/// The running walk.
pub(crate) struct Walk {
    walk: JoinHandle<Result<Walked, Error>>,
    found: Arc<Found>,
}

impl Walk {
    /// How many files the walk has found so far, and, once it has been through the whole
    /// tree, how many there are.
    pub(crate) fn found(&self) -> Arc<Found> {
        self.found.clone()
    }

    /// Waits for the walk to end and returns what it did. Once the stream of [`Files`] is
    /// dropped the walk stops at its next send, so this does not wait long.
    pub(crate) async fn join(self) -> Result<Walked, String> {
        match self.walk.await {
            Ok(walked) => walked.map_err(|err| format!("the walk failed: {err}")),
            Err(panic) => Err(format!("the walk panicked: {panic}")),
        }
    }
}

/// Walks depth first, in name order, counting in `found` and sending every regular file;
/// returns how many directories it listed and those it could not.
fn walk(ctx: &Context, sender: &mpsc::Sender<PathBuf>, found: &Found) -> Result<Walked, Error> {
    let config = ScanConfig::from_ctx(ctx).ok_or_else(|| Error::MissingValue {
        type_name: std::any::type_name::<ScanConfig>(),
    })?;
    if !config.root.is_dir() {
        // A single file; errors are the read stage's to report.
        if send(config.root.clone(), sender, found) {
            found.mark_complete();
        }
        return Ok(Walked {
            directories: 0,
            unlisted: Vec::new(),
        });
    }
    let mut walked = Walked {
        directories: 0,
        unlisted: Vec::new(),
    };
    let mut pending = vec![config.root.clone()];
    while let Some(dir) = pending.pop() {
        if ctx.is_done() {
            return Ok(walked); // stopped early: the count is not the tree's
        }
        let files = match list(&dir, &config.ignore) {
            Ok(listing) => {
                walked.directories += 1;
                // Reversed, so that the stack pops them in name order.
                pending.extend(listing.dirs.into_iter().rev());
                listing.files
            }
            Err(err) => {
                walked.unlisted.push(Skipped {
                    path: dir,
                    reason: Reason::Unreadable(err),
                });
                continue;
            }
        };
        for file in files {
            if !send(file, sender, found) {
                return Ok(walked); // the pipeline has stopped
            }
        }
    }
    found.mark_complete();
    Ok(walked)
}

/// Counts `file` in `found` and sends it to the pipeline: false if the pipeline has stopped.
fn send(file: PathBuf, sender: &mpsc::Sender<PathBuf>, found: &Found) -> bool {
    // Counted before it is sent, so that the pipeline never has more files than were found.
    found.add();
    sender.blocking_send(file).is_ok()
}

/// The entries of one directory, each sorted by name.
struct Listing {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

/// Lists `dir`: its regular files, and its subdirectories whose names are not in `ignore`.
/// Symbolic links are neither followed nor listed.
fn list(dir: &Path, ignore: &[OsString]) -> io::Result<Listing> {
    let mut listing = Listing {
        files: Vec::new(),
        dirs: Vec::new(),
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_file() {
            listing.files.push(entry.path());
        } else if kind.is_dir() && !ignore.contains(&entry.file_name()) {
            listing.dirs.push(entry.path());
        }
    }
    listing.files.sort();
    listing.dirs.sort();
    Ok(listing)
}
