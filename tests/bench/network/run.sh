#!/usr/bin/env bash
# Network inspection throughput against peers on one generated capture, and peak RSS with
# 100,000 concurrent flows. Not a CTest test. Usage:
#   tests/bench/network/run.sh [BUILD_DIR] [MEGABYTES] [FLOWS]
# (default build-release from the release preset, configured and built here if missing; the
# captures, intel and rules are generated into BUILD_DIR/bench-network once and reused).
# Needs tcpdump, ngrep, libndpi-bin (ndpiReader), openssl, /usr/bin/time; see README.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
# shellcheck source=../../../scripts/lib/common.sh
source "$root/scripts/lib/common.sh"
install_packages "${SENNINGEN_BENCH_PACKAGES[@]}"
build="${1:-$root/build-release}"
megabytes="${2:-420}"
flows="${3:-100000}"
if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSENNINGEN_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$build" senningen-agent >/dev/null
agent="$build/agent/senningen-agent"
data="$build/bench-network"
mkdir -p "$data"
gen="/usr/bin/python3 $root/tests/bench/network/make_capture.py"
cap="$data/mixed-${megabytes}M.pcap"
conc="$data/concurrent-${flows}.pcap"
[ -f "$cap" ] || $gen mixed "$cap" --megabytes "$megabytes"
[ -f "$conc" ] || $gen concurrent "$conc" --flows "$flows"
[ -f "$data/intel.dat" ] || $gen intel "$data/intel.dat" --count 100000
[ -f "$data/rules.yar" ] || $gen rules "$data/rules.yar" --count 200
work="$(mktemp -d /tmp/senningen-bench-network.XXXXXX)"
trap 'rm -rf "$work"' EXIT

bytes=$(stat -c %s "$cap")
cat "$cap" "$conc" >/dev/null  # into the page cache, once
echo "capture $cap: $((bytes / 1000000)) MB; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME COMMAND...: wall time and peak RSS by /usr/bin/time; sets $secs and $rss_kb.
run() {
    local name="$1"
    shift
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/stderr" || {
        echo "$name failed:" >&2
        cat "$work/stderr" >&2
        exit 1
    }
    read -r secs rss_kb <"$work/time"
}
gbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.2f", b * 8 / s / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }  # speed a/b = time b/a

common=(--read "$cap" --quiet --agent-id bench --output /dev/null --metadata-log /dev/null
        --intel "$data/intel.dat")
printf '%-44s %8s %8s %9s %10s\n' row seconds Gbit/s "vs ndpi" "2w vs 1w"
run tcpdump tcpdump -r "$cap" -w /dev/null
printf '%-44s %8s %8s\n' "tcpdump -r F -w /dev/null (read floor)" "$secs" "$(gbps "$secs")"
run ngrep ngrep -q -I "$cap" "bench-implant-beacon"
printf '%-44s %8s %8s\n' "ngrep -q -I F bench-implant-beacon" "$secs" "$(gbps "$secs")"
run ndpiReader ndpiReader -q -i "$cap"
ndpi=$secs
printf '%-44s %8s %8s %9s\n' "ndpiReader -q -i F" "$secs" "$(gbps "$secs")" "1.00"
for variant in a b; do
    extra=()
    label="agent (a) analyzers + 100k intel"
    if [ "$variant" = b ]; then
        extra=(--rules "$data/rules.yar")
        label="agent (b) (a) + 200 YARA stream rules"
    fi
    one=""
    for workers in 1 2; do
        run "agent $variant" "$agent" "${common[@]}" "${extra[@]}" --workers "$workers"
        scale=""
        if [ "$workers" = 1 ]; then one=$secs; else scale="$(ratio "$secs" "$one")"; fi
        printf '%-44s %8s %8s %9s %10s\n' "$label, $workers worker(s)" "$secs" \
            "$(gbps "$secs")" "$(ratio "$secs" "$ndpi")" "$scale"
    done
done

# The same (b) with every buffer given to libyara: what the literal prefilter saves.
run "agent b unfiltered" "$agent" "${common[@]}" --rules "$data/rules.yar" --workers 1 \
    --no-yara-prefilter
printf '%-44s %8s %8s %9s\n' "agent (b) --no-yara-prefilter, 1 worker" "$secs" "$(gbps "$secs")" \
    "$(ratio "$secs" "$ndpi")"

echo
echo "peak RSS, $conc ($flows flows open at once), agent (b):"
for workers in 1 2; do
    run "agent rss" "$agent" --read "$conc" --quiet --agent-id bench --output /dev/null \
        --metadata-log /dev/null --intel "$data/intel.dat" --rules "$data/rules.yar" \
        --max-flows $((flows * 2)) --workers "$workers"
    printf '  %d worker(s): %6.1f MB in %s s\n' "$workers" "$(awk -v k="$rss_kb" 'BEGIN { print k / 1024 }')" "$secs"
done
run "ndpiReader rss" ndpiReader -q -i "$conc"
printf '  ndpiReader: %6.1f MB in %s s\n' "$(awk -v k="$rss_kb" 'BEGIN { print k / 1024 }')" "$secs"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
