//! The command line: `scan [--timeout TIME] [--workers N] [--top N] [PATH]`, parsed by hand.

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
  --timeout TIME  stop after TIME and print the partial report; TIME is a number with
                  a unit, ms, s, m or h (such as 50ms, 2s, 1.5m, 1h), or without one
                  for seconds (such as 3 or 0.5)
  --workers N     workers of the `analyse` stage [default: the number of cores, {cores}]
  --top N         how many of the largest files to list [default: 10]
  -h, --help      print this help

Directories named .git or target are not entered, symbolic links are not followed, files
over 8 MiB are not read, and files that are not UTF-8 text are counted as binary. Ctrl-C
stops the scan and prints what it had aggregated so far.

exit status: 0 done, 1 error, 2 invalid arguments, 124 timed out (--timeout),
             130 interrupted (Ctrl-C)
";

/// The durations `--timeout` takes, as its error messages say.
const DURATIONS: &str = "a duration such as 50ms, 2s, 1.5m or 1h, or seconds such as 3 or 0.5";

/// Nanoseconds in a second.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The fraction digits a duration keeps: those past it are less than a nanosecond, even of an
/// hour, and this many keep the arithmetic of [`parse_duration`] well within `u128`.
const FRACTION_DIGITS: usize = 18;

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
                "--timeout" => parsed.timeout = Some(duration(flag, &value()?)?),
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

/// The value of `flag` as a duration (see [`parse_duration`]), or an error that names the flag
/// and what it takes.
fn duration(flag: &str, value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|bad| {
        let problem = match bad {
            BadDuration::Malformed => "",
            BadDuration::Negative => "cannot be negative; ",
            BadDuration::TooLong => "too long to wait for; ",
        };
        format!("invalid value `{value}` for `{flag}`: {problem}expected {DURATIONS}")
    })
}

/// Why a value is not a duration.
#[derive(Debug, PartialEq)]
enum BadDuration {
    /// Not a number followed by a unit or nothing (`soon`, `2 s`, `1e3`, `NaN`, `inf`).
    Malformed,
    /// A duration with a minus sign.
    Negative,
    /// More seconds than a [`Duration`] holds.
    TooLong,
}

/// Parses a duration: a number, with or without a fraction (`1.5`, `.5`), then a unit, `ms`,
/// `s`, `m` or `h`, or none for seconds. Computed in integers, so it is exact (`0.1h` is 360
/// seconds, not a float's 359.99..); digits past the nanosecond are dropped.
fn parse_duration(value: &str) -> Result<Duration, BadDuration> {
    if let Some(magnitude) = value.strip_prefix('-') {
        return match parse_duration(magnitude) {
            Ok(_) | Err(BadDuration::TooLong) => Err(BadDuration::Negative),
            Err(_) => Err(BadDuration::Malformed),
        };
    }
    let unit_at = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(unit_at);
    let nanos_per_unit = match unit {
        "ms" => NANOS_PER_SEC / 1000,
        "" | "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        _ => return Err(BadDuration::Malformed),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(BadDuration::Malformed);
    }
    let fraction = &fraction[..fraction.len().min(FRACTION_DIGITS)];
    // At most FRACTION_DIGITS digits: neither this power of ten nor the product overflows.
    let scale = 10_u128.pow(fraction.len() as u32);
    let fraction_nanos = digits(fraction).ok_or(BadDuration::TooLong)? * nanos_per_unit / scale;
    let nanos = digits(whole)
        .and_then(|whole| whole.checked_mul(nanos_per_unit))
        .and_then(|nanos| nanos.checked_add(fraction_nanos))
        .ok_or(BadDuration::TooLong)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| BadDuration::TooLong)?;
    // A remainder of nanoseconds, less than a second: it fits.
    Ok(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// The number that `text`, ASCII digits only (maybe none, which is 0), writes; `None` if it
/// does not fit.
fn digits(text: &str) -> Option<u128> {
    text.bytes().try_fold(0_u128, |n, digit| {
        n.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
    })
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
        assert_eq!(
            error(&["--timeout", "soon"]),
            "invalid value `soon` for `--timeout`: expected a duration such as 50ms, 2s, 1.5m \
             or 1h, or seconds such as 3 or 0.5"
        );
        assert!(error(&["--timeout=-1"]).contains("`-1` for `--timeout`: cannot be negative"));
        assert!(error(&["--timeout", "NaN"]).contains("`NaN` for `--timeout`: expected"));
        assert!(error(&["--timeout", "1e20"]).contains("`1e20` for `--timeout`: expected"));
        let overflow = error(&["--timeout", "99999999999999999999"]);
        assert!(overflow.contains("too long to wait for; expected a duration"));
        assert_eq!(error(&["--=x"]), "`--` takes no value");
        assert_eq!(error(&["--help=x"]), "`--help` takes no value");
        assert!(error(&["--workers", "0"]).contains("at least 1"));
        assert!(error(&["--top", "-3"]).contains("`-3` for `--top`"));
        assert_eq!(error(&["--top"]), "`--top` needs a value");
        assert_eq!(error(&["--fast"]), "unknown option `--fast`");
        assert!(error(&["a", "b"]).contains("only one PATH"));
        assert_eq!(scan(&["--top", "0"]).top, 0);
    }

    fn duration(value: &str) -> Duration {
        parse_duration(value).unwrap_or_else(|bad| panic!("`{value}`: {bad:?}"))
    }

    #[test]
    fn durations_with_and_without_a_unit() {
        assert_eq!(duration("50ms"), Duration::from_millis(50));
        assert_eq!(duration("2s"), Duration::from_secs(2));
        assert_eq!(duration("1m"), Duration::from_secs(60));
        assert_eq!(duration("1h"), Duration::from_secs(3600));
        assert_eq!(duration("1.5s"), Duration::from_millis(1500));
        assert_eq!(duration("1.5ms"), Duration::from_micros(1500));
        assert_eq!(duration("3"), Duration::from_secs(3));
        assert_eq!(duration("0.5"), Duration::from_millis(500));
        assert_eq!(duration("0.05"), Duration::from_millis(50));
        assert_eq!(duration(".5s"), Duration::from_millis(500));
        assert_eq!(duration("2."), Duration::from_secs(2));
        assert_eq!(duration("0"), Duration::ZERO);
        assert_eq!(scan(&["--timeout", "50ms"]).timeout, Some(duration("0.05")));
    }

    #[test]
    fn durations_are_exact_to_the_nanosecond() {
        assert_eq!(duration("0.1h"), Duration::from_secs(360));
        assert_eq!(duration("0.000000001"), Duration::from_nanos(1));
        assert_eq!(duration("0.0000000019s"), Duration::from_nanos(1));
        assert_eq!(
            duration("1.000000000000000000000000000001h"),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn durations_too_long_for_a_duration() {
        assert_eq!(
            duration(&u64::MAX.to_string()),
            Duration::from_secs(u64::MAX)
        );
        assert_eq!(duration(&format!("{}.999999999", u64::MAX)), Duration::MAX);
        assert_eq!(
            duration("5124095576030431h"),
            Duration::from_secs(5_124_095_576_030_431 * 3600)
        );
        let too_long = ["18446744073709551616", "5124095576030432h", &"9".repeat(50)];
        for value in too_long {
            assert_eq!(
                parse_duration(value),
                Err(BadDuration::TooLong),
                "`{value}`"
            );
        }
    }

    #[test]
    fn not_durations() {
        let malformed = [
            "", "s", ".", "..", ".s", "1.2.3", "soon", "2 s", " 2s", "2s ", "2S", "2sec", "1d",
            "1h30m", "1e3", "+2", "0x10", "NaN", "nan", "inf", "-inf", "infinity", "--1", "-",
            "-s", "٣",
        ];
        for value in malformed {
            assert_eq!(
                parse_duration(value),
                Err(BadDuration::Malformed),
                "`{value}`"
            );
        }
        for value in ["-1", "-0.5", "-2s", "-0", &format!("-{}", "9".repeat(50))] {
            assert_eq!(
                parse_duration(value),
                Err(BadDuration::Negative),
                "`{value}`"
            );
        }
    }
}
