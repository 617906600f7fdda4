//! The sink's state: the analyses aggregated per language, the largest files, the longest line
//! and what was skipped — and its rendering as tables, sorted so that two runs on the same tree
//! print the same report.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::analysis::FileStats;
use crate::{Outcome, Reason, Skipped};

/// How many skipped paths the report lists (it counts them all).
const SKIPPED_LISTED: usize = 10;

/// Line and byte counts added up over files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub lines: u64,
    pub code: u64,
    pub comment: u64,
    pub blank: u64,
    pub bytes: u64,
    pub todos: u64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.files += other.files;
        self.lines += other.lines;
        self.code += other.code;
        self.comment += other.comment;
        self.blank += other.blank;
        self.bytes += other.bytes;
        self.todos += other.todos;
    }
}

impl From<&FileStats> for Totals {
    fn from(file: &FileStats) -> Totals {
        Totals {
            files: 1,
            lines: file.lines,
            code: file.code(),
            comment: file.comment,
            blank: file.blank,
            bytes: file.bytes,
            todos: file.todos,
        }
    }
}

/// The longest line seen so far.
#[derive(Debug, PartialEq, Eq)]
struct Longest {
    chars: usize,
    path: PathBuf,
    line: u64,
}

/// Everything the scan has aggregated so far.
#[derive(Debug)]
pub struct Summary {
    root: PathBuf,
    top: usize,
    languages: BTreeMap<&'static str, Totals>,
    /// At most `top` files, largest first (then by path).
    largest: Vec<(Reverse<u64>, PathBuf)>,
    longest: Option<Longest>,
    too_large: u64,
    unreadable: u64,
    /// Every path skipped for being too large or unreadable, with the reason.
    skipped: Vec<(PathBuf, String)>,
    binary: u64,
}

impl Summary {
    /// An empty summary of the tree at `root` that keeps the `top` largest files.
    pub fn new(root: &Path, top: usize) -> Summary {
        Summary {
            root: root.to_owned(),
            top,
            languages: BTreeMap::new(),
            largest: Vec::new(),
            longest: None,
            too_large: 0,
            unreadable: 0,
            skipped: Vec::new(),
            binary: 0,
        }
    }

    /// Adds what the pipeline found out about one path.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Text(file) => self.add_file(&file),
            Outcome::Skipped(skipped) => self.add_skipped(&skipped),
        }
    }

    /// Records how many binary files the scan left out (the pipeline filters them out before
    /// they reach the sink, and its report counts them).
    pub fn set_binary(&mut self, binary: u64) {
        self.binary = binary;
    }

    /// The totals over every language.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for language in self.languages.values() {
            totals.add(language);
        }
        totals
    }

    fn add_file(&mut self, file: &FileStats) {
        self.languages
            .entry(file.language)
            .or_default()
            .add(&Totals::from(file));
        let path = self.relative(&file.path);
        self.keep_if_longest(&path, file.longest);
        self.keep_if_large(file.bytes, path);
    }

    /// Keeps line `line` of `path`, `chars` long, if it is the longest line so far; of lines
    /// equally long, the one of the first path in name order.
    fn keep_if_longest(&mut self, path: &Path, (line, chars): (u64, usize)) {
        let longest = self.longest.as_ref().is_none_or(|kept| {
            chars > kept.chars || (chars == kept.chars && path < kept.path.as_path())
        });
        if longest && chars > 0 {
            self.longest = Some(Longest {
                chars,
                path: path.to_owned(),
                line,
            });
        }
    }

    /// Keeps `path` among the `top` largest files if it is one of them.
    fn keep_if_large(&mut self, bytes: u64, path: PathBuf) {
        let entry = (Reverse(bytes), path);
        let at = self.largest.partition_point(|kept| *kept < entry);
        if at < self.top {
            self.largest.insert(at, entry);
            self.largest.truncate(self.top);
        }
    }

    fn add_skipped(&mut self, skipped: &Skipped) {
        match skipped.reason {
            Reason::TooLarge(_) => self.too_large += 1,
            Reason::Unreadable(_) => self.unreadable += 1,
        }
        let path = self.relative(&skipped.path);
        self.skipped.push((path, skipped.reason.to_string()));
    }

    /// `path` relative to the scanned root, as the report shows it.
    fn relative(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.root) {
            Ok(relative) if !relative.as_os_str().is_empty() => relative.to_owned(),
            _ => path.to_owned(),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_languages(f)?;
        self.write_largest(f)?;
        if let Some(longest) = &self.longest {
            let Longest { chars, path, line } = longest;
            writeln!(
                f,
                "\nlongest line: {chars} characters, {}:{line}",
                path.display()
            )?;
        }
        self.write_skipped(f)
    }
}

impl Summary {
    fn write_languages(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, t: &Totals| {
            writeln!(
                f,
                "{name:<12} {:>6} {:>8} {:>8} {:>8} {:>7} {:>10} {:>5}",
                t.files,
                t.lines,
                t.code,
                t.comment,
                t.blank,
                human_bytes(t.bytes),
                t.todos
            )
        };
        writeln!(
            f,
            "{:<12} {:>6} {:>8} {:>8} {:>8} {:>7} {:>10} {:>5}",
            "language", "files", "lines", "code", "comment", "blank", "size", "TODOs"
        )?;
        let mut languages: Vec<_> = self.languages.iter().collect();
        // Most lines first; the map's name order breaks ties (the sort is stable).
        languages.sort_by_key(|(_, totals)| Reverse(totals.lines));
        for (name, totals) in languages {
            row(f, name, totals)?;
        }
        row(f, "total", &self.totals())
    }

    fn write_largest(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.largest.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nlargest files")?;
        for (Reverse(bytes), path) in &self.largest {
            writeln!(f, "{:>10}  {}", human_bytes(*bytes), path.display())?;
        }
        Ok(())
    }

    fn write_skipped(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nskipped: {} binary, {} too large, {} unreadable",
            self.binary, self.too_large, self.unreadable
        )?;
        let mut skipped: Vec<_> = self.skipped.iter().collect();
        skipped.sort();
        for (path, reason) in skipped.iter().take(SKIPPED_LISTED) {
            writeln!(f, "  {}: {reason}", path.display())?;
        }
        if skipped.len() > SKIPPED_LISTED {
            writeln!(f, "  and {} more", skipped.len() - SKIPPED_LISTED)?;
        }
        Ok(())
    }
}

/// A size in bytes, in the largest binary unit that keeps it at least 1 (`1.5 KiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(path: &str, content: &str) -> Outcome {
        let file = FileStats::of(PathBuf::from(path), content.as_bytes()).expect("text");
        Outcome::Text(file)
    }

    fn skipped(path: &str, reason: Reason) -> Outcome {
        Outcome::Skipped(Skipped {
            path: PathBuf::from(path),
            reason,
        })
    }

    #[test]
    fn aggregates_per_language_and_in_total() {
        let mut summary = Summary::new(Path::new("repo"), 2);
        summary.add(text("repo/a.rs", "fn a() {}\n// b\n\n"));
        summary.add(text("repo/b.rs", "fn b() {}\n"));
        summary.add(text("repo/c.toml", "# c\nc = 1\n"));
        let rust = summary.languages["Rust"];
        assert_eq!(
            (rust.files, rust.lines, rust.code, rust.comment, rust.blank),
            (2, 4, 2, 1, 1)
        );
        let totals = summary.totals();
        assert_eq!((totals.files, totals.lines, totals.bytes), (3, 6, 36));
    }

    #[test]
    fn keeps_the_largest_files_in_order() {
        let mut summary = Summary::new(Path::new("."), 2);
        for (path, size) in [("./s", 1), ("./l", 30), ("./m", 20), ("./k", 30)] {
            summary.add(text(path, &"x".repeat(size)));
        }
        let largest: Vec<_> = summary
            .largest
            .iter()
            .map(|(b, p)| (b.0, p.to_str()))
            .collect();
        assert_eq!(largest, [(30, Some("k")), (30, Some("l"))]);
        assert_eq!(
            summary.longest.as_ref().map(|l| l.path.as_path()),
            Some(Path::new("k"))
        );
        assert!(Summary::new(Path::new("."), 0).largest.is_empty());
    }

    #[test]
    fn counts_what_was_skipped() {
        let mut summary = Summary::new(Path::new("r"), 10);
        summary.add(skipped("r/big", Reason::TooLarge(1 << 30)));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        summary.add(skipped("r/secret", Reason::Unreadable(denied)));
        summary.set_binary(3);
        let report = summary.to_string();
        assert!(
            report.contains("skipped: 3 binary, 1 too large, 1 unreadable"),
            "{report}"
        );
        assert!(
            report.contains("  big: too large to read (1.0 GiB)"),
            "{report}"
        );
        assert!(report.contains("  secret: permission denied"), "{report}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
    }
}
