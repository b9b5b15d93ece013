#!/usr/bin/env bash
# heaptrack-node.sh: stands in for wsgate (WSGATE_BIN=load-tests/scripts/heaptrack-node.sh) in
# soak.sh and the other cluster scripts, to profile one node's heap. The node whose arguments
# contain HEAP_NODE (default node-1.yaml) runs HEAP_BIN (a wsgate built with
# `--features wsgate/system-allocator`: heaptrack hooks malloc, which mimalloc bypasses) under
# heaptrack's preload library, its trace written to HEAP_OUT/heap.PID.zst; the others run
# HEAP_BIN plainly. A TERM kills the profiled node with SIGKILL, so what it still held at that
# moment is reported as "leaked": its live heap. Compare two runs stopped at different times:
#   heaptrack_print -f later.zst -d earlier.zst -l 1 -p 0 -a 0 -T 0
# Needs heaptrack (Debian package `heaptrack`) and zstd.
case "$*" in
  *"${HEAP_NODE:-node-1.yaml}"*) ;;
  *) exec "${HEAP_BIN:?HEAP_BIN names the wsgate binary to run}" "$@" ;;
esac
lib=/usr/lib/heaptrack
[ -x "$lib/libexec/heaptrack_interpret" ] || { echo "heaptrack-node: heaptrack is not installed" >&2; exit 2; }
out="${HEAP_OUT:-.}/heap.$$"
mkfifo "$out.fifo"
("$lib/libexec/heaptrack_interpret" <"$out.fifo" | zstd -q -c >"$out.zst") &
LD_PRELOAD="$lib/libheaptrack_preload.so" DUMP_HEAPTRACK_OUTPUT="$out.fifo" "$HEAP_BIN" "$@" &
child=$!
trap 'kill -9 "$child"' TERM INT
wait "$child"
wait "$child"
rm -f "$out.fifo"
