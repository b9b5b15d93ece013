#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target (gateway/fuzz and vtl/fuzz) with the nightly
# toolchain and runs each for a bounded time (FUZZ_SECONDS, default 20) from its committed
# corpus. New inputs go to a temporary directory, so the repository's corpora stay as they are;
# a crash, a timeout or an out-of-memory input fails the script and is left in
# <fuzz dir>/artifacts/<target>/. Longer local runs: docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> [%4ds] %s\n' "$SECONDS" "$*"; }

seconds="${FUZZ_SECONDS:-20}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz smoke skipped: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

# With CARGO_TARGET_DIR set (scripts/test.sh sets it to a cache outside the clone), the fuzz
# builds go under it too, so a second run on the same machine does not build from cold.
target_args=()
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  target_args=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi

# The smoke builds the targets at opt-level 1: a cold build of the gateway and its dependencies
# with coverage instrumentation takes markedly less time than at opt-level 3, and a run of
# seconds needs coverage more than speed. Long runs (docs/reliability.md) use `cargo +nightly
# fuzz run` directly, at the crates' release opt-level 3; FUZZ_OPT_LEVEL=3 does the same here.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${FUZZ_OPT_LEVEL:-1}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# -s none: the targets are safe Rust, so the address sanitizer finds nothing the language does
# not already check, and builds and runs are several times faster without it. -a keeps debug
# assertions (and overflow checks) on.
run_dir() {
  local dir="$1"
  shift
  log "cargo +nightly fuzz build ($dir)"
  (cd "$dir" && cargo +nightly fuzz build -s none -a "${target_args[@]}")
  local target
  for target in "$@"; do
    log "fuzz $dir $target for ${seconds}s"
    mkdir -p "$work/$dir/$target"
    (cd "$dir" && cargo +nightly fuzz run -s none -a "${target_args[@]}" "$target" "$work/$dir/$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
      2>"$work/$target.log") || {
      tail -n 40 "$work/$target.log" >&2
      echo "error: fuzz target $target found a failure (see $dir/fuzz/artifacts/$target/)" >&2
      exit 1
    }
    grep -E '^stat::number_of_executed_units' "$work/$target.log" | sed "s/^/    $target /" || true
  done
}

run_dir gateway route_selection wire sigv4 jwt config upgrade frames
run_dir vtl render
log "fuzz smoke passed"
