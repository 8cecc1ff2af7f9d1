//! How a failed command tells its user: one line saying what went wrong
//! (`error: …`), where there is one a line saying what to do (`help: …`),
//! and an exit code scripts can rely on. Never a Debug dump of nested
//! errors and never the same text twice.

use std::error::Error as _;

use cairn_client::ClientError;

use crate::exit;

/// A failure, ready to print.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// What went wrong, one line.
    pub error: String,
    /// What to do, if there is something.
    pub help: Option<String>,
    /// The process's exit code.
    pub code: u8,
}

impl Report {
    /// Prints the report on stderr.
    pub fn print(&self) {
        eprintln!("error: {}", self.error);
        if let Some(help) = &self.help {
            eprintln!("help: {help}");
        }
    }
}

/// The gRPC status somewhere in `cause`, if it is one or carries one.
fn status_of<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a tonic::Status> {
    if let Some(s) = cause.downcast_ref::<tonic::Status>() {
        return Some(s);
    }
    match cause.downcast_ref::<ClientError>() {
        Some(ClientError::Status(s)) => Some(s),
        _ => None,
    }
}

/// `PermissionDenied` → `PERMISSION_DENIED`, the name the API documents.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The innermost cause of `status` (e.g. "Connection refused (os error
/// 111)"), if it has one.
fn root_cause(status: &tonic::Status) -> Option<String> {
    let mut cause = status.source()?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause.to_string())
}

/// One line for a status: its code's API name and its message.
fn status_line(s: &tonic::Status) -> String {
    let message = match (s.message(), root_cause(s)) {
        ("", Some(root)) => root,
        ("", None) => s.code().description().to_lowercase(),
        (m, Some(root)) if !m.contains(&root) => format!("{m} ({root})"),
        (m, _) => m.to_owned(),
    };
    format!("{}: {message}", code_name(s.code()))
}

/// Whether retrying later may succeed.
fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

/// Whether `s` is a connection the other side closed under the call
/// (what a client sees when a TLS 1.3 server refuses its certificate:
/// the handshake completes on the client's side first, so it reads the
/// server's alert or, if it wrote first, a closed connection).
fn closed_by_peer(s: &tonic::Status) -> bool {
    let Some(root) = root_cause(s) else {
        return false;
    };
    match s.code() {
        tonic::Code::Unknown => ["broken pipe", "reset", "fatal alert"]
            .iter()
            .any(|k| root.contains(k)),
        tonic::Code::Cancelled => root.contains("connection closed"),
        _ => false,
    }
}

/// The report of a failed command.
pub fn report(e: &anyhow::Error) -> Report {
    let mut parts: Vec<String> = Vec::new();
    let mut status = None;
    for cause in e.chain() {
        if let Some(s) = status_of(cause) {
            status = Some(s);
            break;
        }
        let text = cause.to_string();
        // A cause whose text its context already quotes adds nothing.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    let connect = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<cairn_identity::Error>(),
            Some(cairn_identity::Error::Connect { .. })
        )
    });
    if let Some(s) = status {
        parts.push(status_line(s));
    }
    // Contexts that only repeat the next part are dropped (outer to inner).
    let mut lines: Vec<String> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if !parts[i + 1..]
            .iter()
            .any(|later| later.contains(p.as_str()))
        {
            lines.push(p.clone());
        }
    }
    let error = lines.join(": ");
    match status.map(|s| s.code()) {
        Some(code) if retryable(code) => Report {
            error,
            help: Some(
                "the service did not answer: check that it runs and the address is right; it is safe to retry"
                    .into(),
            ),
            code: exit::UNAVAILABLE,
        },
        Some(_) if status.is_some_and(closed_by_peer) => Report {
            error,
            help: Some(
                "the connection was closed during or right after the TLS handshake: if the service runs, it does not admit this certificate under the directory in force (a member removed, a CA replaced, a certificate revoked or expired); another member's `cairn directory show` says who is in it"
                    .into(),
            ),
            code: exit::USAGE,
        },
        _ if connect => Report {
            error,
            help: Some("check that the service runs and the address is right; it is safe to retry".into()),
            code: exit::UNAVAILABLE,
        },
        _ => Report {
            error,
            help: None,
            code: exit::USAGE,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_one_line_and_the_retry_code() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let mut status = tonic::Status::unavailable("tcp connect error");
        status.set_source(std::sync::Arc::new(io));
        let e = anyhow::Error::new(ClientError::Status(status)).context("submitting the incident");
        let r = report(&e);
        assert_eq!(r.code, exit::UNAVAILABLE);
        assert!(
            r.error
                .starts_with("submitting the incident: UNAVAILABLE: "),
            "{}",
            r.error
        );
        assert!(r.error.contains("Connection refused"), "{}", r.error);
        assert!(
            !r.error.contains("source:") && !r.error.contains("code: '"),
            "{}",
            r.error
        );
        assert!(r.help.is_some());
    }

    #[test]
    fn a_refusal_names_its_code_and_message_once() {
        let status = tonic::Status::permission_denied("record r1 is uk-aisi's");
        let e = anyhow::Error::new(ClientError::Status(status));
        let r = report(&e);
        assert_eq!(r.error, "PERMISSION_DENIED: record r1 is uk-aisi's");
        assert_eq!((r.code, r.help), (exit::USAGE, None));
    }

    #[test]
    fn plain_errors_keep_their_context_without_repeats() {
        let e = anyhow::anyhow!("no such file").context("reading incident.json");
        assert_eq!(report(&e).error, "reading incident.json: no such file");
        let e = anyhow::anyhow!("bad key").context("bad key");
        assert_eq!(report(&e).error, "bad key");
    }

    #[test]
    fn a_certificate_the_service_refuses_says_so_whichever_way_it_shows() {
        let closed = |mut status: tonic::Status, root: &str| {
            status.set_source(std::sync::Arc::new(std::io::Error::other(root.to_owned())));
            report(&anyhow::Error::new(ClientError::Status(status)))
        };
        for (status, root) in [
            (
                tonic::Status::unknown("transport error"),
                "received fatal alert: CertificateUnknown",
            ),
            (
                tonic::Status::unknown("transport error"),
                "stream closed because of a broken pipe",
            ),
            (
                tonic::Status::cancelled("operation was canceled"),
                "connection closed",
            ),
        ] {
            let r = closed(status, root);
            assert_eq!(r.code, exit::USAGE, "{r:?}");
            assert!(
                r.help
                    .as_deref()
                    .is_some_and(|h| h.contains("does not admit this certificate")),
                "{r:?}"
            );
        }
        // A refusal with a message is not one.
        let r = closed(tonic::Status::unknown("a bug"), "something else");
        assert_eq!(r.help, None);
    }
}
