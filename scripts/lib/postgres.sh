# A throw-away PostgreSQL server for the tests: its own cluster in the build folder, on a free
# loopback port, trust authentication, stopped when the calling script exits.
#   source scripts/lib/postgres.sh
#   postgres_start DIR     # exports SENNINGEN_TEST_POSTGRES_URL (postgresql://...)
# Root cannot run the server, so as root the cluster belongs to (and runs as) the Debian
# package's `postgres` user; anyone else runs it as themselves.
# shellcheck shell=bash

SENNINGEN_POSTGRES_DIR=""
SENNINGEN_POSTGRES_AS=()

# The newest installed server's binaries (Debian keeps them out of PATH).
postgres_bin_dir() {
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)"
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        echo "postgres.sh: no PostgreSQL server under /usr/lib/postgresql (package postgresql)" >&2
        return 1
    fi
    echo "$dir"
}

# A port nothing listens on right now (the kernel's choice for port 0).
postgres_free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

postgres_stop() {
    [ -n "$SENNINGEN_POSTGRES_DIR" ] || return 0
    local bin
    bin="$(postgres_bin_dir)" || return 0
    if [ -f "$SENNINGEN_POSTGRES_DIR/data/postmaster.pid" ]; then
        "${SENNINGEN_POSTGRES_AS[@]}" "$bin/pg_ctl" -D "$SENNINGEN_POSTGRES_DIR/data" -m fast \
            -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$SENNINGEN_POSTGRES_DIR"
    SENNINGEN_POSTGRES_DIR=""
}

# postgres_start DIR: DIR is made afresh (anything in it is removed first).
postgres_start() {
    local dir="$1"
    local bin port
    bin="$(postgres_bin_dir)"
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "postgres.sh: running as root needs the 'postgres' user (package postgresql)" >&2
            return 1
        fi
        SENNINGEN_POSTGRES_AS=(runuser -u postgres --)
    else
        SENNINGEN_POSTGRES_AS=()
    fi
    # A server left running by an interrupted earlier run: stop it before its files go.
    if [ -f "$dir/data/postmaster.pid" ]; then
        "${SENNINGEN_POSTGRES_AS[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    SENNINGEN_POSTGRES_DIR="$dir"
    trap postgres_stop EXIT
    # Bash skips the EXIT trap when a signal kills it; exiting on the signal runs it.
    trap 'exit 130' INT
    trap 'exit 143' TERM

    "${SENNINGEN_POSTGRES_AS[@]}" "$bin/initdb" -D "$dir/data" -A trust -U senningen -E UTF8 \
        --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        return 1
    }
    # A free port can be taken between the check and the bind: try a few.
    local attempt
    for attempt in 1 2 3 4 5; do
        port="$(postgres_free_port)"
        # fsync off: a test cluster need not survive a power cut, and it is much faster.
        if "${SENNINGEN_POSTGRES_AS[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
            -t 30 -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null; then
            break
        fi
        echo "postgres.sh: server did not start on port $port (attempt $attempt)" >&2
        port=""
    done
    if [ -z "$port" ]; then
        tail -n 20 "$dir/server.log" >&2
        return 1
    fi
    "${SENNINGEN_POSTGRES_AS[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U senningen \
        senningen_test
    export SENNINGEN_TEST_POSTGRES_URL="postgresql://senningen@127.0.0.1:$port/senningen_test"
    say "PostgreSQL test server: $SENNINGEN_TEST_POSTGRES_URL (cluster in $dir)"
}
