//! `cairn-intake`: run the service (flags: `cairn-intake --help`).

fn main() -> std::process::ExitCode {
    cairn_service_core::binary::main(
        "cairn-intake",
        "cairn-intake: the incident intake record service.",
        cairn_intake::start,
    )
}
