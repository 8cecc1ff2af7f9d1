//! `cairn-evals`: run the service (flags: `cairn-evals --help`).

fn main() -> std::process::ExitCode {
    cairn_service_core::binary::main(
        "cairn-evals",
        "cairn-evals: the evaluation results record service.",
        cairn_evals::start,
    )
}
