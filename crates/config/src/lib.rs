//! Configuration files for cairn's service binaries.
//!
//! A file is TOML with `version = 1` and one key per command-line flag of
//! the binary (`data_dir` or `data-dir` for `--data-dir`; a list for a
//! repeatable flag). It is found with `--config <path>` or `CAIRN_CONFIG`.
//! Precedence, highest first: the command line, the flag's environment
//! variable, the file, the built-in default. So one file can describe a
//! deployment while an orchestrator overrides single settings (a secret's
//! path, the listen address) through the environment.
//!
//! It also owns when a service binary stops ([`shutdown_signal`]).
//!
//! What this crate owns: reading the file, refusing what it does not
//! understand (a missing or unknown `version`, a key that is not a flag of
//! this binary, a value of the wrong shape) with an error naming the key,
//! and turning the rest into arguments for clap, which then validates
//! values exactly as it does for flags. It must not know any binary's
//! settings: the binary's clap definition is the schema.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or, on
/// Unix, SIGTERM — what container runtimes and Kubernetes send — so that
/// a service stops gracefully (finishes requests, closes its log, gives up
/// a lease) instead of dying mid-write.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// The file format version this build reads.
pub const VERSION: i64 = 1;

/// The environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "CAIRN_CONFIG";

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not TOML.
    #[error("config file {path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// `version` is missing or not one this build reads.
    #[error("config file {path}: {reason}")]
    Version {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key that is not a setting of this program.
    #[error("config file {path}: unknown key {key:?} (known: {known})")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The keys that are accepted.
        known: String,
    },
    /// A value of the wrong shape for its key.
    #[error("config file {path}: key {key:?}: {reason}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Keys that are never settings: the file cannot name itself, and help
/// and version are actions.
const NOT_SETTINGS: &[&str] = &["config", "help", "version"];

/// `argv` with the settings of the configuration file (named by
/// `--config` in `argv` or by `CAIRN_CONFIG`) inserted before the user's
/// own arguments, skipping every setting that the command line or its
/// environment variable already gives. Without a file, `argv` unchanged.
pub fn args_with_file(
    command: &clap::Command,
    argv: Vec<OsString>,
) -> Result<Vec<OsString>, ConfigError> {
    let Some(path) = config_path(&argv) else {
        return Ok(argv);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let file_args = file_args(command, &path, &text, &argv, |name| {
        std::env::var_os(name).is_some()
    })?;
    let mut out = Vec::with_capacity(argv.len() + file_args.len());
    let mut rest = argv.into_iter();
    out.extend(rest.next());
    out.extend(file_args);
    out.extend(rest);
    Ok(out)
}

/// `--config <p>`, `--config=<p>` or `CAIRN_CONFIG`.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os(ENV_CONFIG).map(PathBuf::from)
}

/// Whether `--long` is given in `argv`.
fn on_command_line(argv: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    let with_value = format!("--{long}=");
    argv.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&with_value)
    })
}

fn file_args(
    command: &clap::Command,
    path: &Path,
    text: &str,
    argv: &[OsString],
    env_is_set: impl Fn(&str) -> bool,
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            reason: e.message().to_owned(),
        })?;
    check_version(path, table.get("version"))?;
    let settings: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| !NOT_SETTINGS.contains(&l)))
        .collect();
    let mut out = Vec::new();
    for (key, value) in &table {
        if key == "version" {
            continue;
        }
        let long = key.replace('_', "-");
        let Some(arg) = settings
            .iter()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            let mut known: Vec<String> = settings
                .iter()
                .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
                .collect();
            known.sort();
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                known: known.join(", "),
            });
        };
        // The command line and the environment win over the file.
        if on_command_line(argv, &long)
            || arg
                .get_env()
                .is_some_and(|e| env_is_set(&e.to_string_lossy()))
        {
            continue;
        }
        let flags = as_flags(arg, &long, value).map_err(|reason| ConfigError::Value {
            path: path.to_owned(),
            key: key.clone(),
            reason,
        })?;
        out.extend(flags);
    }
    Ok(out)
}

/// The file's `version`, which must be this build's.
fn check_version(path: &Path, version: Option<&toml::Value>) -> Result<(), ConfigError> {
    let reason = match version {
        Some(toml::Value::Integer(VERSION)) => return Ok(()),
        Some(toml::Value::Integer(v)) => {
            format!("version {v} is not supported (this build reads version {VERSION})")
        }
        Some(_) => format!("version must be the integer {VERSION}"),
        None => format!("the key `version` is missing (use version = {VERSION})"),
    };
    Err(ConfigError::Version {
        path: path.to_owned(),
        reason,
    })
}

/// The command-line flags a file's `value` for `arg` (`--long`) stands
/// for: a switch when true, one flag per item of a list for a repeatable
/// setting, else one flag with the value.
fn as_flags(arg: &clap::Arg, long: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let takes_value = arg.get_action().takes_values();
    let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
    let flag = |v: &toml::Value| scalar(v).map(|v| OsString::from(format!("--{long}={v}")));
    match value {
        toml::Value::Boolean(b) if !takes_value => Ok(if *b {
            vec![OsString::from(format!("--{long}"))]
        } else {
            Vec::new()
        }),
        toml::Value::Array(items) if repeatable => items.iter().map(flag).collect(),
        toml::Value::Array(_) => Err("takes one value, not a list".into()),
        other if takes_value => Ok(vec![flag(other)?]),
        _ => Err("is a switch: use true or false".into()),
    }
}

fn scalar(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("a {} is not a setting value", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::{CommandFactory as _, Parser};

    #[derive(Parser, Debug)]
    struct Args {
        #[arg(long, env = "CAIRN_TEST_LISTEN", default_value = "127.0.0.1:0")]
        listen: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 5000)]
        receipt_wait_ms: u64,
        #[arg(long = "cosigner")]
        cosigners: Vec<String>,
        #[arg(long)]
        verbose: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    }

    fn parse(text: &str, argv: &[&str], env: &[&str]) -> Result<Args, String> {
        let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let extra = file_args(&Args::command(), Path::new("c.toml"), text, &argv, |n| {
            env.contains(&n)
        })
        .map_err(|e| e.to_string())?;
        let mut all = vec![argv[0].clone()];
        all.extend(extra);
        all.extend(argv[1..].iter().cloned());
        Args::try_parse_from(all).map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_fills_what_flags_and_environment_leave() {
        let file = r#"
            version = 1
            listen = "127.0.0.1:9000"
            data_dir = "/var/lib/cairn"
            receipt-wait-ms = 250
            cosigner = ["a", "b"]
            verbose = true
        "#;
        let a = parse(file, &["x"], &[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:9000");
        assert_eq!(a.data_dir, PathBuf::from("/var/lib/cairn"));
        assert_eq!(a.receipt_wait_ms, 250);
        assert_eq!(a.cosigners, ["a", "b"]);
        assert!(a.verbose);
        // The command line wins, in either spelling.
        let a = parse(file, &["x", "--receipt-wait-ms", "9", "--data-dir=/d"], &[]).unwrap();
        assert_eq!((a.receipt_wait_ms, a.data_dir), (9, PathBuf::from("/d")));
        // A flag's environment variable wins over the file.
        let a = parse(file, &["x"], &["CAIRN_TEST_LISTEN"]);
        // (The variable is not really set here, so clap falls back to the default.)
        assert_eq!(a.unwrap().listen, "127.0.0.1:0");
    }

    #[test]
    fn unknown_keys_and_versions_are_refused_by_name() {
        let e = parse("version = 1\ndata_dri = \"/x\"", &["x"], &[]).unwrap_err();
        assert!(
            e.contains("unknown key \"data_dri\"") && e.contains("data_dir"),
            "{e}"
        );
        let e = parse("data_dir = \"/x\"", &["x"], &[]).unwrap_err();
        assert!(e.contains("`version` is missing"), "{e}");
        let e = parse("version = 2\ndata_dir = \"/x\"", &["x"], &[]).unwrap_err();
        assert!(e.contains("version 2 is not supported"), "{e}");
        let e = parse("version = 1\nconfig = \"/other.toml\"", &["x"], &[]).unwrap_err();
        assert!(e.contains("unknown key \"config\""), "{e}");
        let e = parse("version = 1\nlisten = [\"a\"]", &["x"], &[]).unwrap_err();
        assert!(e.contains("key \"listen\": takes one value"), "{e}");
        let e = parse("version = 1\nverbose = \"yes\"", &["x"], &[]).unwrap_err();
        assert!(e.contains("is a switch"), "{e}");
        let e = parse("version = 1\n[data_dir]\nx = 1", &["x"], &[]).unwrap_err();
        assert!(e.contains("a table is not a setting value"), "{e}");
        let e = parse("version = ", &["x"], &[]).unwrap_err();
        assert!(e.contains("c.toml"), "{e}");
        // Values are still validated by clap, naming the flag.
        let e = parse(
            "version = 1\ndata_dir = \"/x\"\nreceipt_wait_ms = \"soon\"",
            &["x"],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("--receipt-wait-ms"), "{e}");
    }

    #[test]
    fn the_path_comes_from_the_flag_or_the_environment() {
        let v = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_path(&v(&["x", "--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            config_path(&v(&["x", "--config=b.toml"])),
            Some("b.toml".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "version = 1\ndata_dir = \"/from-file\"\n").unwrap();
        let argv = v(&["x", "--config", p.to_str().unwrap(), "--verbose"]);
        let all = args_with_file(&Args::command(), argv).unwrap();
        let a = Args::try_parse_from(all).unwrap();
        assert_eq!(a.data_dir, PathBuf::from("/from-file"));
        assert!(a.verbose);
        let e = args_with_file(
            &Args::command(),
            v(&["x", "--config", "/nonexistent/c.toml"]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/c.toml"), "{e}");
    }
}
