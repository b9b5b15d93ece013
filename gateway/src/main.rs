//! The `wsgate` binary: everything lives in the library's [`wsgate::cli`].

/// mimalloc instead of the system allocator: the per-message and per-connect paths allocate
/// and free many small buffers (events, HTTP requests, frames), and under glibc's malloc that
/// took about 15% of the CPU (see BENCHMARKS.md). The `system-allocator` feature keeps the
/// system's, for heap profilers that hook `malloc` (docs/reliability.md#soak).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    no_huge_pages();
    wsgate::cli::main()
}

/// Transparent huge pages off for this process. mimalloc asks for them (`MADV_HUGEPAGE`) and the
/// kernel's khugepaged then fills in sparse 2 MiB regions: with a flat live heap, the soak's two
/// nodes rose 1.45 MB a minute, most of it huge pages; without them they held 30 MB less and rose
/// 0.57 MB a minute (docs/reliability.md#soak). Kernels before 3.15 refuse it; nothing changes.
#[cfg(target_os = "linux")]
fn no_huge_pages() {
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("wsgate: cannot turn transparent huge pages off ({error}); RSS may creep up");
    }
}

#[cfg(not(target_os = "linux"))]
fn no_huge_pages() {}
