//! The pipeline's source: a walk of the directory tree on a blocking thread, handing the files
//! it finds to the pipeline as a `Stream`.
//!
//! `std::fs` blocks, so the walk runs under `spawn_blocking` and sends what it finds through a
//! bounded channel: it runs ahead of the readers by at most the channel's capacity, and stops
//! as soon as the scan's context is done or the pipeline has stopped listening.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::pin::Pin;
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
    let (found, files) = mpsc::channel(AHEAD);
    let ctx = ctx.clone();
    let walk = tokio::task::spawn_blocking(move || walk(&ctx, &found));
    (Files(files), Walk(walk))
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
pub(crate) struct Walk(JoinHandle<Result<Walked, Error>>);

impl Walk {
    /// Waits for the walk to end and returns what it did. Once the stream of [`Files`] is
    /// dropped the walk stops at its next send, so this does not wait long.
    pub(crate) async fn join(self) -> Result<Walked, String> {
        match self.0.await {
            Ok(walked) => walked.map_err(|err| format!("the walk failed: {err}")),
            Err(panic) => Err(format!("the walk panicked: {panic}")),
        }
    }
}

/// Walks depth first, in name order, sending every regular file; returns how many directories
/// it listed and those it could not.
fn walk(ctx: &Context, found: &mpsc::Sender<PathBuf>) -> Result<Walked, Error> {
    let config = ScanConfig::from_ctx(ctx).ok_or_else(|| Error::MissingValue {
        type_name: std::any::type_name::<ScanConfig>(),
    })?;
    if !config.root.is_dir() {
        // A single file; errors are the read stage's to report.
        let _ = found.blocking_send(config.root.clone());
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
            break;
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
            if found.blocking_send(file).is_err() {
                return Ok(walked); // the pipeline has stopped
            }
        }
    }
    Ok(walked)
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
