#!/usr/bin/env bash
# Load benchmark of authenticated, durable ingest: 20 simulated agents for 60 s against a real
# collector. Not a CTest test. Usage: tests/bench/ingest/run.sh [BUILD_DIR] [AGENTS] [SECONDS]
# (default build-release, configured and built here if missing; see README.md beside this).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
build="${1:-$root/build-release-bench}"
agents="${2:-20}"
seconds="${3:-60}"
if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSENNINGEN_BUILD_TESTS=ON >/dev/null
fi
ninja -C "$build" senningen-collector senningen_bench_ingest >/dev/null
work="$(mktemp -d /tmp/senningen-bench-ingest.XXXXXX)"
# The simulated agents stand for separate hosts, each with its own disk: their queues go to
# memory (tmpfs) when there is one, so that twenty agents' fsyncs do not queue up on the disk
# the collector commits to. BENCH_QUEUE_DIR=/some/disk/dir puts them back on a disk.
queues="${BENCH_QUEUE_DIR:-}"
if [ -z "$queues" ] && [ -d /dev/shm ]; then queues="$(mktemp -d /dev/shm/senningen-bench-queues.XXXXXX)"; fi
queues="${queues:-$work}"
trap 'rm -rf "$work"; case "$queues" in /dev/shm/senningen-bench-queues.*) rm -rf "$queues";; esac' EXIT
echo "uptime: $(uptime)"
echo "build $build ($(grep -m1 CMAKE_BUILD_TYPE "$build/CMakeCache.txt" | cut -d= -f2)), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/tests/bench/senningen_bench_ingest" --collector "$build/collector/senningen-collector" \
    --workdir "$work" --queue-dir "$queues" --agents "$agents" --seconds "$seconds"
