//! What the scan learns about one text file: its language, and its lines counted as code,
//! comment or blank, with the longest one and the TODO markers.
//!
//! The rules are deliberately simple, so that the numbers are easy to check by hand: a line is
//! blank when it holds only whitespace, a comment when it starts (after whitespace) with its
//! language's line-comment marker, and code otherwise. Block comments count as code.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The markers counted as TODOs, wherever they appear in a line.
const MARKERS: [&str; 2] = ["TODO", "FIXME"];

/// A language, recognised from a file's extension, name or `#!` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Language {
    /// The name shown in the report.
    pub name: &'static str,
    /// What starts a line comment, if the language has line comments.
    pub line_comment: Option<&'static str>,
}

impl Language {
    const fn new(name: &'static str, line_comment: Option<&'static str>) -> Language {
        Language { name, line_comment }
    }

    /// Files of no language the scan knows.
    pub const OTHER: Language = Language::new("Other", None);

    /// The language of the file at `path` whose text starts with `first_line`.
    pub fn detect(path: &Path, first_line: &str) -> Language {
        let extension = path.extension().and_then(OsStr::to_str).unwrap_or("");
        let name = path.file_name().and_then(OsStr::to_str).unwrap_or("");
        Language::by_extension(extension)
            .or_else(|| Language::by_name(name))
            .or_else(|| Language::by_shebang(first_line))
            .unwrap_or(Language::OTHER)
    }

    fn by_extension(extension: &str) -> Option<Language> {
        let (name, comment) = match extension {
            "rs" => ("Rust", "//"),
            "c" | "h" => ("C", "//"),
            "cc" | "cpp" | "cxx" | "hpp" => ("C++", "//"),
            "go" => ("Go", "//"),
            "java" => ("Java", "//"),
            "js" | "mjs" | "cjs" => ("JavaScript", "//"),
            "ts" | "tsx" => ("TypeScript", "//"),
            "py" => ("Python", "#"),
            "pl" | "pm" => ("Perl", "#"),
            "sh" | "bash" => ("Shell", "#"),
            "toml" => ("TOML", "#"),
            "lock" => ("Lockfile", "#"),
            "yml" | "yaml" => ("YAML", "#"),
            "md" | "markdown" => return Some(Language::new("Markdown", None)),
            "json" => return Some(Language::new("JSON", None)),
            "html" | "htm" => return Some(Language::new("HTML", None)),
            "css" => return Some(Language::new("CSS", None)),
            // Plain text, and the expected compiler output of UI tests.
            "txt" | "stderr" | "stdout" => return Some(Language::new("Text", None)),
            _ => return None,
        };
        Some(Language::new(name, Some(comment)))
    }

    fn by_name(name: &str) -> Option<Language> {
        match name {
            "Makefile" | "makefile" => Some(Language::new("Makefile", Some("#"))),
            "Dockerfile" => Some(Language::new("Dockerfile", Some("#"))),
            ".gitignore" | ".dockerignore" => Some(Language::new("Ignore list", Some("#"))),
            _ => None,
        }
    }

    /// Scripts without an extension, such as `#!/usr/bin/env bash`.
    fn by_shebang(first_line: &str) -> Option<Language> {
        let interpreter = first_line.strip_prefix("#!")?.split_whitespace().last()?;
        match interpreter.rsplit('/').next()? {
            "sh" | "bash" | "zsh" => Some(Language::new("Shell", Some("#"))),
            "python" | "python3" => Some(Language::new("Python", Some("#"))),
            "perl" => Some(Language::new("Perl", Some("#"))),
            _ => None,
        }
    }
}

/// The analysis of one text file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStats {
    /// The file, as the walk found it.
    pub path: PathBuf,
    /// Its language.
    pub language: &'static str,
    /// Its size.
    pub bytes: u64,
    /// How many lines it has (a last line without a newline counts).
    pub lines: u64,
    /// Lines holding only whitespace.
    pub blank: u64,
    /// Lines starting with the language's line-comment marker.
    pub comment: u64,
    /// The longest line: its number (from 1) and its length in characters; `(0, 0)` when empty.
    pub longest: (u64, usize),
    /// How many TODO and FIXME markers it contains.
    pub todos: u64,
}

impl FileStats {
    /// Analyses the contents of the file at `path`, or returns `None` when they are not text:
    /// a NUL byte, or anything that is not UTF-8.
    pub fn of(path: PathBuf, bytes: &[u8]) -> Option<FileStats> {
        if bytes.contains(&0) {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let language = Language::detect(&path, text.lines().next().unwrap_or(""));
        let mut stats = FileStats {
            path,
            language: language.name,
            bytes: bytes.len() as u64,
            lines: 0,
            blank: 0,
            comment: 0,
            longest: (0, 0),
            todos: 0,
        };
        for line in text.lines() {
            stats.add_line(line, language.line_comment);
        }
        Some(stats)
    }

    /// Lines that are neither blank nor comments.
    pub fn code(&self) -> u64 {
        self.lines - self.blank - self.comment
    }

    fn add_line(&mut self, line: &str, line_comment: Option<&str>) {
        self.lines += 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            self.blank += 1;
        } else if line_comment.is_some_and(|marker| trimmed.starts_with(marker)) {
            self.comment += 1;
        }
        let chars = line.chars().count();
        if chars > self.longest.1 {
            self.longest = (self.lines, chars);
        }
        self.todos += MARKERS
            .iter()
            .map(|marker| line.matches(marker).count() as u64)
            .sum::<u64>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(path: &str, text: &str) -> FileStats {
        FileStats::of(PathBuf::from(path), text.as_bytes()).expect("text")
    }

    #[test]
    fn counts_code_comment_and_blank_lines() {
        let file = stats(
            "src/main.rs",
            "//! docs\n\nfn main() {\n    // TODO: more\n    println!(\"hi\"); // FIXME\n}\n",
        );
        assert_eq!(file.language, "Rust");
        assert_eq!(
            (file.lines, file.blank, file.comment, file.code()),
            (6, 1, 2, 3)
        );
        assert_eq!(file.todos, 2);
        assert_eq!(file.longest, (5, 28));
        assert_eq!(file.bytes, 71);
    }

    #[test]
    fn a_last_line_without_newline_counts_and_crlf_is_one_line_end() {
        let file = stats("notes.txt", "a\r\nbb\r\nccc");
        assert_eq!((file.lines, file.longest), (3, (3, 3)));
        assert_eq!(stats("empty.md", "").lines, 0);
    }

    #[test]
    fn languages_without_line_comments_count_no_comments() {
        let file = stats("README.md", "# Title\n// not a comment\n");
        assert_eq!(
            (file.language, file.comment, file.code()),
            ("Markdown", 0, 2)
        );
    }

    #[test]
    fn binary_and_non_utf8_files_are_not_text() {
        assert_eq!(FileStats::of("a.bin".into(), b"ELF\0\x01"), None);
        assert_eq!(FileStats::of("latin1.txt".into(), b"caf\xe9"), None);
    }

    #[test]
    fn detects_languages_by_extension_name_and_shebang() {
        let detect = |path: &str, first: &str| Language::detect(Path::new(path), first).name;
        assert_eq!(detect("Cargo.toml", ""), "TOML");
        assert_eq!(detect("docker/Dockerfile", "FROM rust"), "Dockerfile");
        assert_eq!(detect(".ci/run", "#!/usr/bin/env bash"), "Shell");
        assert_eq!(detect("bin/tool", "#!/usr/bin/python3"), "Python");
        assert_eq!(detect("LICENSE", "MIT License"), "Other");
    }
}
