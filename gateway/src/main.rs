//! The `wsgate` binary: everything lives in the library's [`wsgate::cli`].

fn main() -> std::process::ExitCode {
    wsgate::cli::main()
}
