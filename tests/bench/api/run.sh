#!/usr/bin/env bash
# REST API latency under load with millions of stored alerts, on SQLite and on PostgreSQL, with
# wrk at 20 concurrent clients, against the same SQL run by the databases' own command-line
# clients in the same run. Not a CTest test. Usage:
#   tests/bench/api/run.sh [BUILD_DIR] [COUNT]
# (default build-release-bench, configured and built here if missing, and 10,000,000 alerts; see
# README.md beside this for the environment variables that choose backends, paths and times).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
# shellcheck source=../../../scripts/lib/common.sh
source "$root/scripts/lib/common.sh"
install_packages "${SENNINGEN_BENCH_PACKAGES[@]}" postgresql
build="${1:-$root/build-release-bench}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"  # absolute: PostgreSQL's socket directory must be
count="${2:-10000000}"
backends="${BENCH_BACKENDS:-sqlite postgresql}"
seconds="${BENCH_SECONDS:-20}"
clients="${BENCH_CLIENTS:-20}"
threads="${BENCH_THREADS:-2}"
target_ms="${BENCH_TARGET_MS:-100}"
cache="${BENCH_CACHE:-$build/bench-api}"
# The measured requests. {since} is the newest alert's time minus 24 h, {agent} the agent of the
# newest alert; both are read from the API before measuring.
# (Defaults set apart: a "}" inside ${VAR:-...} would end the expansion.)
default_list='/api/v1/alerts?severity=3,4&since={since}&limit=50'
default_agent='/api/v1/alerts?agent={agent}&since={since}&limit=50'
list_path="${BENCH_LIST_PATH:-$default_list}"
agent_path="${BENCH_AGENT_PATH:-$default_agent}"
agg_path="${BENCH_AGG_PATH:-/api/v1/alerts/aggregate?by=hour&limit=720}"  # the 30 days

if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSENNINGEN_BUILD_TESTS=ON >/dev/null
fi
ninja -C "$build" senningen-collector senningen_bench_generate >/dev/null
collector="$build/collector/senningen-collector"
generate="$build/tests/bench/senningen_bench_generate"
mkdir -p "$cache"
work="$(mktemp -d /tmp/senningen-bench-api.XXXXXX)"
collector_pid=""
cleanup() {
    if [ -n "$collector_pid" ]; then kill "$collector_pid" 2>/dev/null || true; wait "$collector_pid" 2>/dev/null || true; fi
    rm -rf "$work"
    postgres_stop
}
# shellcheck source=../../../scripts/lib/postgres.sh
source "$root/scripts/lib/postgres.sh"
trap cleanup EXIT
trap 'echo "run.sh: failed at line $LINENO" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

echo "uptime: $(uptime)"
echo "build $build ($(grep -m1 CMAKE_BUILD_TYPE "$build/CMakeCache.txt" | cut -d= -f2)), $(nproc) cores; $count alerts; wrk -t$threads -c$clients -d${seconds}s"
printf '%s\n' "password-of-the-bench-$$" >"$work/password"
cat >"$work/auth.lua" <<'EOF'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
EOF

# gen SPEC WRITERS: the generator's summary line, with its rows/s.
gen() {
    "$generate" --db "$1" --count "$count" --writers "$2" | tee -a "$work/generated"
}

# add_account SPEC: an analyst account and its bearer token in $token.
add_account() {
    local spec="$1" user="bench-$(date +%s)-$$"
    "$collector" user add "$user" --role analyst --password-file "$work/password" --db "$spec" >/dev/null
    token="$("$collector" user token "$user" --label bench --db "$spec" | grep -o 'snt_[0-9a-f]*')"
}

# start_collector SPEC: starts a collector on the store; sets $base.
start_collector() {
    local spec="$1"
    "$collector" --insecure --listen 127.0.0.1:0 --http 127.0.0.1:0 --db "$spec" --web-root none \
        --quiet >"$work/ready" 2>"$work/collector.log" &
    collector_pid=$!
    local i
    for i in $(seq 1 600); do
        if grep -q '^ready' "$work/ready"; then break; fi
        if ! kill -0 "$collector_pid" 2>/dev/null; then cat "$work/collector.log" >&2; exit 1; fi
        sleep 0.1
    done
    base="http://$(grep -o 'http=[^ ]*' "$work/ready" | cut -d= -f2)"
}

stop_collector() {
    if ! kill "$collector_pid" 2>/dev/null; then
        echo "the collector had stopped by itself; its log:" >&2
        tail -n 20 "$work/collector.log" >&2
    fi
    wait "$collector_pid" || true
    collector_pid=""
}

# get PATH: the body; fails on an HTTP error.
get() { curl -sf -H "Authorization: Bearer $token" "$base$1"; }

# fill PATH: the path with {since} and {agent} replaced.
fill() { sed -e "s|{since}|$since|g" -e "s|{agent}|$agent|g" <<<"$1"; }

printf '%-12s %-44s %9s %8s %8s %8s %8s  %s\n' backend query req/s p50 p90 p99 errors "p99<${target_ms}ms"
# measure BACKEND LABEL SPEC PATH: one wrk run on a fresh collector, one row. No wrk warm-up:
# requests it abandons would still be queued ahead of the measured ones; the probe warms up.
measure() {
    local backend="$1" label="$2" spec="$3" path status
    path="$(fill "$4")"
    # A collector of its own per row: requests wrk gave up on keep running in the server, and
    # must not be queued ahead of the next row's.
    start_collector "$spec"
    status="$(curl -s -o "$work/probe" -w '%{http_code}' -H "Authorization: Bearer $token" "$base$path")"
    if [ "$status" != 200 ]; then
        printf '%-12s %-44s %s\n' "$backend" "$label" "not measured: HTTP $status for $path ($(head -c 160 "$work/probe"))"
        stop_collector
        return
    fi
    BENCH_TOKEN="$token" wrk -t"$threads" -c"$clients" -d"${seconds}s" --latency --timeout 10s \
        -s "$work/auth.lua" "$base$path" >"$work/wrk.out"
    cp "$work/wrk.out" "$cache/wrk-$backend-${label//[^a-z0-9]/_}.out"  # the raw output, for the record
    /usr/bin/python3 - "$backend" "$label" "$target_ms" "$work/wrk.out" <<'EOF'
import re, sys
backend, label, target, path = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
text = open(path).read()
def ms(q):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % q, text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
done = int(re.search(r"(\d+) requests in ([\d.]+\w+)", text).group(1))
if done == 0:
    took = re.search(r"\d+ requests in ([\d.]+\w+)", text).group(1)
    print("%-12s %-44s %9d %s  FAIL" % (backend, label, 0, "no request answered within the " + took + " run"))
    sys.exit(0)
errors = 0
for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
    m = re.search(pattern, text)
    if m:
        errors += sum(int(g) for g in m.groups())
p50, p90, p99 = ms(50), ms(90), ms(99)
verdict = "PASS" if p99 < target and errors == 0 else "FAIL"
print("%-12s %-44s %9.0f %6.1fms %6.1fms %6.1fms %8d  %s" % (backend, label, rps, p50, p90, p99, errors, verdict))
EOF
    stop_collector
}

# peer BACKEND LABEL FILE SQL COMMAND...: COMMAND runs FILE; first with SQL once, to time it,
# then with SQL repeated to fill about 5 s (1..200 times); one row with statements/s and the
# mean time of one, on one connection.
peer() {
    local backend="$1" label="$2" file="$3" sql="$4"
    shift 4
    local t0 t1 n
    echo "$sql" >"$file"
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    n=$(awk -v t0="$t0" -v t1="$t1" \
        'BEGIN { s = t1 - t0; n = int(5 / (s > 0 ? s : 0.001)); print (n < 1 ? 1 : (n > 200 ? 200 : n)) }')
    : >"$file"
    for _ in $(seq 1 "$n"); do echo "$sql" >>"$file"; done
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    awk -v b="$backend" -v l="$label" -v n="$n" -v t0="$t0" -v t1="$t1" \
        'BEGIN { s = t1 - t0; printf "%-12s %-44s %9.1f %6.1fms (mean of %d, 1 client)\n", b, l, n / s, s / n * 1000, n }'
}

run_backend() {
    local backend="$1" spec="$2"
    add_account "$spec"
    start_collector "$spec"
    # The newest alert fixes the window: the data may have been generated hours ago (cache).
    get "/api/v1/alerts?limit=1" >"$work/newest"
    read -r newest_ns since agent < <(/usr/bin/python3 - "$work/newest" <<'EOF'
import datetime, json, sys
a = json.load(open(sys.argv[1]))["alerts"][0]
t = datetime.datetime.strptime(a["timestamp"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
since = t - datetime.timedelta(hours=24)
print(int(t.timestamp()) * 10**9, since.strftime("%Y-%m-%dT%H:%M:%SZ"), a["agent"]["id"])
EOF
)
    local since_ns=$((newest_ns - 86400000000000))
    stop_collector
    measure "$backend" "list severity=3,4 last 24h limit 50" "$spec" "$list_path"
    measure "$backend" "list agent=$agent last 24h limit 50" "$spec" "$agent_path"
    measure "$backend" "hourly aggregation" "$spec" "$agg_path"
    # Peers: the same statements the store runs, by the database's own client, one connection.
    local list_sql="SELECT body, eve FROM alerts WHERE ts_ns >= $since_ns AND severity IN (3, 4) ORDER BY ts_ns DESC, id ASC LIMIT 50;"
    local agg_sql="SELECT ts_ns / 3600000000000 AS hour, severity, count(*) FROM alerts GROUP BY hour, severity;"
    if [ "$backend" = sqlite ]; then
        local db="${spec#sqlite:}"
        peer "$backend" "peer: sqlite3 CLI, same list SQL" "$work/list.sql" "$list_sql" \
            sqlite3 "$db" ".read $work/list.sql"
        peer "$backend" "peer: sqlite3 CLI, GROUP BY hour, severity" "$work/agg.sql" "$agg_sql" \
            sqlite3 "$db" ".read $work/agg.sql"
    else
        list_sql="${list_sql/body, eve/eve}"
        peer "$backend" "peer: psql, same list SQL" "$work/list.sql" "$list_sql" \
            psql -q -X "$spec" -f "$work/list.sql"
        peer "$backend" "peer: psql, GROUP BY hour, severity" "$work/agg.sql" "$agg_sql" \
            psql -q -X "$spec" -f "$work/agg.sql"
    fi
}

for backend in $backends; do
    case "$backend" in
        sqlite)
            db="$cache/alerts-sqlite-v$("$generate" --schema-version sqlite)-$count.db"
            if [ -f "$db" ]; then
                echo "sqlite: reusing $db (same schema version and count)"
            else
                rm -f "$db.tmp" "$db.tmp-wal" "$db.tmp-shm"
                gen "sqlite:$db.tmp" 1
                sqlite3 "$db.tmp" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
                mv "$db.tmp" "$db"
                rm -f "$db.tmp-wal" "$db.tmp-shm"
            fi
            cat "$db" >/dev/null  # into the page cache, as a running collector's file would be
            run_backend sqlite "sqlite:$db"
            ;;
        postgresql)
            if [ -n "${BENCH_PG_URL:-}" ]; then
                # A database that already holds generated alerts (a server kept from an earlier
                # run): measured as it is.
                echo "postgresql: measuring the alerts already in $BENCH_PG_URL"
                run_backend postgresql "$BENCH_PG_URL"
                continue
            fi
            postgres_start "$cache/postgres"
            trap cleanup EXIT  # postgres_start set its own
            gen "$SENNINGEN_TEST_POSTGRES_URL" "${BENCH_PG_WRITERS:-4}"
            # What autovacuum does after a bulk load on a real server, without the wait.
            psql -q -X "$SENNINGEN_TEST_POSTGRES_URL" -c "VACUUM ANALYZE alerts;" >/dev/null
            run_backend postgresql "$SENNINGEN_TEST_POSTGRES_URL"
            postgres_stop
            ;;
        *) echo "unknown backend $backend" >&2; exit 64 ;;
    esac
done
echo "uptime: $(uptime)"
