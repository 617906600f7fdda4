//! The command line: `scan [--timeout SECS] [--workers N] [--top N] [PATH]`, parsed by hand.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The help text; `{cores}` is replaced by this machine's number of cores.
const USAGE: &str = "\
scan: count the lines of code, comments and TODOs of a directory tree, concurrently

usage: cargo run --release --example scan -- [OPTIONS] [PATH]

arguments:
  PATH            the directory (or file) to scan [default: the current directory]

options:
  --timeout SECS  stop after SECS seconds (fractions allowed, such as 0.5) and print
                  the partial report
  --workers N     workers of the `analyse` stage [default: the number of cores, {cores}]
  --top N         how many of the largest files to list [default: 10]
  -h, --help      print this help

Directories named .git or target are not entered, symbolic links are not followed, files
over 8 MiB are not read, and files that are not UTF-8 text are counted as binary. Ctrl-C
stops the scan and prints what it had aggregated so far.

exit status: 0 done, 1 error, 2 invalid arguments, 124 timed out (--timeout),
             130 interrupted (Ctrl-C)
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Scan, with these settings.
    Scan(Args),
    /// Print the help.
    Help,
}

/// The settings of a scan.
#[derive(Debug, PartialEq)]
pub struct Args {
    /// The directory or file to scan.
    pub path: PathBuf,
    /// A deadline on the whole scan.
    pub timeout: Option<Duration>,
    /// Workers of the `analyse` stage.
    pub workers: usize,
    /// How many of the largest files to list.
    pub top: usize,
}

/// The help text.
pub fn usage() -> String {
    USAGE.replace("{cores}", &cores().to_string())
}

/// This machine's number of cores (one if it cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Command {
    /// Parses the arguments that follow the program's name. Options and `PATH` may come in any
    /// order; an option's value follows it (`--top 5`) or is joined with `=` (`--top=5`), and
    /// `--` ends the options.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
        let mut parsed = Args {
            path: PathBuf::from("."),
            timeout: None,
            workers: cores(),
            top: 10,
        };
        let mut path = None;
        let mut args = args.into_iter();
        let mut options_ended = false;
        while let Some(arg) = args.next() {
            let text = arg.to_str().unwrap_or("");
            if options_ended || !text.starts_with('-') || text == "-" {
                set_path(&mut path, arg)?;
                continue;
            }
            let (flag, inline) = match text.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (text, None),
            };
            let takes_no_value = |flag: &str| match &inline {
                Some(_) => Err(format!("`{flag}` takes no value")),
                None => Ok(()),
            };
            let mut value = || value_of(flag, inline.clone(), &mut args);
            match flag {
                "-h" | "--help" => {
                    takes_no_value(flag)?;
                    return Ok(Command::Help);
                }
                "--" => {
                    takes_no_value(flag)?;
                    options_ended = true;
                }
                "--timeout" => parsed.timeout = Some(seconds(flag, &value()?)?),
                "--workers" => parsed.workers = count(flag, &value()?, 1)?,
                "--top" => parsed.top = count(flag, &value()?, 0)?,
                _ => return Err(format!("unknown option `{flag}`")),
            }
        }
        if let Some(path) = path {
            parsed.path = path;
        }
        Ok(Command::Scan(parsed))
    }
}

fn set_path(path: &mut Option<PathBuf>, arg: OsString) -> Result<(), String> {
    if let Some(first) = path {
        return Err(format!(
            "unexpected argument `{}`: only one PATH can be given (the first was `{}`)",
            arg.to_string_lossy(),
            first.display()
        ));
    }
    *path = Some(PathBuf::from(arg));
    Ok(())
}

/// The value of `flag`: joined to it with `=`, or the next argument.
fn value_of(
    flag: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = OsString>,
) -> Result<String, String> {
    if let Some(value) = inline {
        return Ok(value);
    }
    let next = rest
        .next()
        .ok_or_else(|| format!("`{flag}` needs a value"))?;
    next.into_string()
        .map_err(|arg| format!("invalid value `{}` for `{flag}`", arg.to_string_lossy()))
}

/// A duration in seconds, such as `2` or `0.05`.
fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    let invalid = |expected: &str| format!("invalid value `{value}` for `{flag}`: {expected}");
    let secs = value
        .parse::<f64>()
        .map_err(|_| invalid("expected seconds, such as 2 or 0.5"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid("expected a number of seconds of 0 or more"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| invalid("too long to wait for"))
}

/// A whole number of at least `min`.
fn count(flag: &str, value: &str, min: usize) -> Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= min)
        .ok_or_else(|| {
            format!(
                "invalid value `{value}` for `{flag}`: expected a whole number of at least {min}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        Command::parse(args.iter().map(OsString::from))
    }

    fn scan(args: &[&str]) -> Args {
        match parse(args) {
            Ok(Command::Scan(args)) => args,
            other => panic!("expected a scan, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let args = scan(&[]);
        assert_eq!(args.path, PathBuf::from("."));
        assert_eq!((args.timeout, args.workers, args.top), (None, cores(), 10));
    }

    #[test]
    fn options_and_path_in_any_order() {
        let args = scan(&["--top", "3", "src", "--timeout=0.05", "--workers", "4"]);
        assert_eq!(args.path, PathBuf::from("src"));
        assert_eq!(args.timeout, Some(Duration::from_millis(50)));
        assert_eq!((args.workers, args.top), (4, 3));
        assert_eq!(
            scan(&["--", "--odd-name"]).path,
            PathBuf::from("--odd-name")
        );
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["src", "--help"]), Ok(Command::Help));
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
        assert!(usage().contains(&format!("the number of cores, {}", cores())));
    }

    #[test]
    fn invalid_input_is_an_error_that_names_it() {
        let error = |args: &[&str]| parse(args).expect_err("invalid");
        assert!(error(&["--timeout", "soon"]).contains("`soon` for `--timeout`"));
        assert!(error(&["--timeout", "-1"]).contains("0 or more"));
        assert!(error(&["--timeout", "NaN"]).contains("0 or more"));
        assert!(error(&["--timeout", "1e20"]).contains("too long"));
        assert_eq!(error(&["--=x"]), "`--` takes no value");
        assert_eq!(error(&["--help=x"]), "`--help` takes no value");
        assert!(error(&["--workers", "0"]).contains("at least 1"));
        assert!(error(&["--top", "-3"]).contains("`-3` for `--top`"));
        assert_eq!(error(&["--top"]), "`--top` needs a value");
        assert_eq!(error(&["--fast"]), "unknown option `--fast`");
        assert!(error(&["a", "b"]).contains("only one PATH"));
        assert_eq!(scan(&["--top", "0"]).top, 0);
    }
}
