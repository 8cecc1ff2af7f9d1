//! Tests that cross cairn's crates (and, as the services land, its
//! services): each test in `tests/` starts what it needs on loopback ports
//! with a generated development PKI. This library holds no code.
#![forbid(unsafe_code)]
