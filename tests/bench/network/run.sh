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
bodies="$data/mixed-${megabytes}M.bodies"  # the capture's HTTP bodies, one after the other
conc="$data/concurrent-${flows}.pcap"
if [ ! -f "$cap" ] || [ ! -f "$bodies" ]; then
    $gen mixed "$cap" --megabytes "$megabytes" --bodies "$bodies"
fi
[ -f "$conc" ] || $gen concurrent "$conc" --flows "$flows"
[ -f "$data/intel.dat" ] || $gen intel "$data/intel.dat" --count 100000
[ -f "$data/rules.yar" ] || $gen rules "$data/rules.yar" --count 200
work="$(mktemp -d /tmp/senningen-bench-network.XXXXXX)"
trap 'rm -rf "$work"' EXIT

bytes=$(stat -c %s "$cap")
body_bytes=$(stat -c %s "$bodies")
cat "$cap" "$conc" "$bodies" >/dev/null  # into the page cache, once
echo "capture $cap: $((bytes / 1000000)) MB, $((body_bytes / 1000000)) MB of it HTTP bodies;" \
    "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

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
# mem KIB: /usr/bin/time's %M (KiB) in MiB and in decimal MB.
mem() { awk -v k="$1" 'BEGIN { printf "%6.1f MiB (%6.1f MB)", k / 1024, k * 1024 / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }  # speed a/b = time b/a

common=(--read "$cap" --quiet --agent-id bench --output /dev/null --metadata-log /dev/null
        --intel "$data/intel.dat")
# The rows, each a command; every round runs all of them once in this order, so that a row and
# ndpiReader always share the machine's state of the moment (these VMs change speed by tens
# of percent within minutes). A row's figure is its median over the rounds, and the ratio to
# ndpiReader is the median of the per-round ratios, with their range beside it.
rounds="${SENNINGEN_BENCH_ROUNDS:-3}"
names=(tcpdump ngrep ndpi digests a1 a2 a2md5 pair b1 b2 b1nopf)
declare -A label=(
    [tcpdump]="tcpdump -r F -w /dev/null (read floor)"
    [ngrep]="ngrep -q -I F bench-implant-beacon"
    [ndpi]="ndpiReader -q -i F"
    [digests]="floor: the bodies' 3 digests alone, 2 processes"
    [a1]="agent (a) analyzers + 100k intel, 1 worker"
    [a2]="agent (a) analyzers + 100k intel, 2 workers"
    [a2md5]="agent (a) --file-hashes none (MD5: intel), 2 workers"
    [pair]="two agents (a), 1 worker each, at once"
    [b1]="agent (b) (a) + 200 YARA stream rules, 1 worker"
    [b2]="agent (b) (a) + 200 YARA stream rules, 2 workers"
    [b1nopf]="agent (b) --no-yara-prefilter, 1 worker"
)
# run_row NAME: one timed run of the row. The capture is read into the page cache again first
# (untimed; only pages gone since are read): this VM drops cached pages of idle files with no
# memory pressure (fincore: 64 MB of the 441 MB capture gone after a minute idle; tcpdump
# then took 0.24 s instead of 0.13 s).
run_row() {
    cat "$cap" >/dev/null
    case "$1" in
        tcpdump) run "$1" tcpdump -r "$cap" -w /dev/null ;;
        ngrep) run "$1" ngrep -q -I "$cap" "bench-implant-beacon" ;;
        ndpi) run "$1" ndpiReader -q -i "$cap" ;;
        # What the agent's default digests of every HTTP body cost at the least on this
        # machine's two cores: the bodies alone, hashed with the libcrypto the agent uses.
        # No two-worker agent row with all three digests can beat it.
        digests) cat "$bodies" >/dev/null; run_digests ;;
        a1) run "$1" "$agent" "${common[@]}" --workers 1 ;;
        a2) run "$1" "$agent" "${common[@]}" --workers 2 ;;
        # (a) without the SHA-1 and SHA-256 of every file: only MD5, which the intel's
        # FILE_HASH indicators (all MD5) need. What the digests cost.
        a2md5) run "$1" "$agent" "${common[@]}" --workers 2 --file-hashes none ;;
        # The machine's own ceiling for "2 workers vs 1": two independent one-worker runs
        # share nothing but the cores, caches and memory; their speed-up over one run
        # (2 x the one-worker time / the time both take) is what two cores give at best.
        pair) run_pair ;;
        b1) run "$1" "$agent" "${common[@]}" --rules "$data/rules.yar" --workers 1 ;;
        b2) run "$1" "$agent" "${common[@]}" --rules "$data/rules.yar" --workers 2 ;;
        # (b) with every buffer given to libyara: what the literal prefilter saves.
        b1nopf) run "$1" "$agent" "${common[@]}" --rules "$data/rules.yar" --workers 1 \
                    --no-yara-prefilter ;;
    esac
}
# at_once NAME COMMAND... -- COMMAND...: secs = the wall time for both commands, started
# together.
at_once() {
    local name="$1" first=() start end pid
    shift
    while [ "$1" != "--" ]; do
        first+=("$1")
        shift
    done
    shift
    start="$(date +%s.%N)"
    "${first[@]}" >/dev/null 2>"$work/stderr-1" &
    pid=$!
    "$@" >/dev/null 2>"$work/stderr-2" || {
        echo "$name failed:" >&2
        cat "$work/stderr-2" >&2
        exit 1
    }
    wait "$pid" || {
        echo "$name failed:" >&2
        cat "$work/stderr-1" >&2
        exit 1
    }
    end="$(date +%s.%N)"
    secs="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
}
# run_digests: MD5, SHA-1 and SHA-256 of the bodies, one pass, in two processes, each over
# half of them (as two workers each hash their files).
run_digests() {
    local floor="$root/tests/bench/network/digest_floor.py" half=$((body_bytes / 2))
    at_once digests /usr/bin/python3 "$floor" "$bodies" 0 "$half" \
        -- /usr/bin/python3 "$floor" "$bodies" "$half" $((body_bytes - half))
}
# run_pair: two agents (a), one worker each.
run_pair() {
    at_once pair "$agent" "${common[@]}" --workers 1 -- "$agent" "${common[@]}" --workers 1
}
declare -A times
for ((r = 1; r <= rounds; r++)); do
    for name in "${names[@]}"; do
        run_row "$name"
        times[$name]+="$secs "
    done
done
# median LIST...: the middle value (the mean of the two middle ones for an even count).
median() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# per_round A B: the per-round ratios time(B)/time(A) (speed of A relative to B).
per_round() {
    local -a ta tb
    read -r -a ta <<<"${times[$1]}"
    read -r -a tb <<<"${times[$2]}"
    local i
    for i in "${!ta[@]}"; do ratio "${ta[$i]}" "${tb[$i]}"; echo; done
}
# summary A B: "median (min-max)" of the per-round ratios.
summary() {
    local values
    mapfile -t values < <(per_round "$1" "$2")
    printf '%s (%s-%s)' "$(median "${values[@]}")" \
        "$(printf '%s\n' "${values[@]}" | sort -g | head -1)" \
        "$(printf '%s\n' "${values[@]}" | sort -g | tail -1)"
}
# ceiling: "median (min-max)" over the rounds of 2 x time(a1) / time(pair).
ceiling() {
    local -a ta tp values
    read -r -a ta <<<"${times[a1]}"
    read -r -a tp <<<"${times[pair]}"
    local i
    for i in "${!ta[@]}"; do
        values+=("$(awk -v a="${ta[$i]}" -v p="${tp[$i]}" 'BEGIN { printf "%.2f", 2 * a / p }')")
    done
    printf '%s (%s-%s)' "$(median "${values[@]}")" \
        "$(printf '%s\n' "${values[@]}" | sort -g | head -1)" \
        "$(printf '%s\n' "${values[@]}" | sort -g | tail -1)"
}
echo "$rounds rounds; seconds and Gbit/s: medians; ratios: median (range) of the per-round ratios"
printf '%-52s %8s %7s %20s %20s\n' row seconds Gbit/s "vs ndpiReader" "2 workers vs 1"
for name in "${names[@]}"; do
    read -r -a all <<<"${times[$name]}"
    secs="$(median "${all[@]}")"
    vs="" scale=""
    case "$name" in
        ndpi) vs="1.00" ;;
        digests | a1 | a2md5 | b1 | b1nopf) vs="$(summary "$name" ndpi)" ;;
        a2) vs="$(summary a2 ndpi)" scale="$(summary a2 a1)" ;;
        # Twice the work in SECS: the ceiling is 2 x a1 / pair, per round.
        pair) scale="ceiling $(ceiling)" ;;
        b2) vs="$(summary b2 ndpi)" scale="$(summary b2 b1)" ;;
    esac
    rate="$(gbps "$secs")"
    # The pair reads the capture twice in that time; the digests row reads no capture: its
    # rate is the one an agent row would have if the digests were all it did.
    [ "$name" = pair ] && rate="$(gbps "$(awk -v s="$secs" 'BEGIN { printf "%.4f", s / 2 }')")"
    printf '%-52s %8s %7s %20s %20s\n' "${label[$name]}" "$secs" "$rate" "$vs" "$scale"
done

echo
echo "peak RSS, $conc ($flows flows open at once), agent (b):"
for workers in 1 2; do
    cat "$conc" >/dev/null
    run "agent rss" "$agent" --read "$conc" --quiet --agent-id bench --output /dev/null \
        --metadata-log /dev/null --intel "$data/intel.dat" --rules "$data/rules.yar" \
        --max-flows $((flows * 2)) --workers "$workers"
    printf '  %d worker(s): %s in %s s\n' "$workers" "$(mem "$rss_kb")" "$secs"
done
cat "$conc" >/dev/null
run "ndpiReader rss" ndpiReader -q -i "$conc"
printf '  ndpiReader:  %s in %s s\n' "$(mem "$rss_kb")" "$secs"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
