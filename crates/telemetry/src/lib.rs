//! How a cairn process reports on itself: its log filter and format
//! (human-readable text or one JSON object per line, for log pipelines),
//! and its Prometheus metrics ([`metrics`]).
//! Every binary sets its logging up here, once, so all of them accept the
//! same `--log` / `CAIRN_LOG` and `--log-format` / `CAIRN_LOG_FORMAT`.
//!
//! This crate must not log secrets on anyone's behalf or decide what is
//! logged: callers own their events and spans; this crate owns only where
//! and how they are written. An invalid filter or format is an error, never
//! a silent fallback.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod metrics;

use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter is not a valid `tracing` directive list.
    #[error("log filter {filter:?} is not valid: {reason}")]
    Filter {
        /// What was given.
        filter: String,
        /// The parser's reason.
        reason: String,
    },
    /// Not one of the formats.
    #[error("log format {0:?} is not one of: text, json")]
    Format(String),
    /// A global subscriber was already installed.
    #[error("logging was already set up in this process")]
    AlreadySet,
    /// Registering, encoding or serving metrics failed.
    #[error("metrics: {0}")]
    Metrics(String),
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields, spans).
    Json,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(TelemetryError::Format(other.chars().take(40).collect())),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Parses a filter such as `info` or `cairn_log=debug,info`.
pub fn filter(directives: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(directives).map_err(|e| TelemetryError::Filter {
        filter: directives.chars().take(200).collect(),
        reason: e.to_string(),
    })
}

/// A subscriber writing to `writer` with `directives` in `format`.
pub fn subscriber<W>(
    directives: &str,
    format: LogFormat,
    writer: W,
) -> Result<Box<dyn tracing::Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(directives)?)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    })
}

/// Installs the process's logger: `directives` in `format` on stderr.
pub fn init(directives: &str, format: LogFormat) -> Result<(), TelemetryError> {
    let s = subscriber(directives, format, std::io::stderr)?;
    tracing::subscriber::set_global_default(s).map_err(|_| TelemetryError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines(format: LogFormat, directives: &str) -> Vec<String> {
        let buf = Buffer::default();
        let s = subscriber(directives, format, buf.clone()).unwrap();
        tracing::subscriber::with_default(s, || {
            let span = tracing::info_span!("submit", record_id = "0192-abc");
            let _e = span.enter();
            tracing::info!(member = "uk-aisi", "record accepted");
            tracing::debug!("hidden at info");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        out.lines().map(str::to_owned).collect()
    }

    #[test]
    fn json_lines_carry_level_message_fields_and_span() {
        let lines = lines(LogFormat::Json, "info");
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        for needle in [
            r#""level":"INFO""#,
            r#""message":"record accepted""#,
            r#""member":"uk-aisi""#,
            r#""record_id":"0192-abc""#,
            r#""name":"submit""#,
        ] {
            assert!(line.contains(needle), "{needle} missing in {line}");
        }
    }

    #[test]
    fn text_lines_and_the_filter_apply() {
        let lines = lines(LogFormat::Text, "debug");
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("INFO") && lines[0].contains("record accepted"));
        assert!(!lines[0].starts_with('{'));
        assert!(lines[1].contains("hidden at info"));
    }

    #[test]
    fn bad_filters_and_formats_are_refused_by_name() {
        let e = filter("info,=[").unwrap_err().to_string();
        assert!(e.contains("log filter") && e.contains("info,=["), "{e}");
        let e = "yaml".parse::<LogFormat>().unwrap_err().to_string();
        assert!(e.contains("\"yaml\"") && e.contains("text, json"), "{e}");
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::Json.to_string(), "json");
    }
}
