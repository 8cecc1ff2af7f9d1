//! `cairn-intake`: run the service (flags: `cairn-intake --help`).

// jemalloc instead of the system allocator: the record path allocates per
// request on many threads, where glibc malloc cost 18% of the CPU
// (BENCHMARKS.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cairn_service_core::binary::main(
        "cairn-intake",
        "cairn-intake: the incident intake record service.",
        cairn_intake::start,
    )
}
