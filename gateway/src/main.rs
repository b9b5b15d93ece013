//! The `wsgate` binary: everything lives in the library's [`wsgate::cli`].

/// mimalloc instead of the system allocator: the per-message and per-connect paths allocate
/// and free many small buffers (events, HTTP requests, frames), and under glibc's malloc that
/// took about 15% of the CPU (see BENCHMARKS.md). The `system-allocator` feature keeps the
/// system's, for heap profilers that hook `malloc` (docs/reliability.md#soak).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    wsgate::cli::main()
}
