# Shared by scripts/demo and scripts/test: package installation and the build.
# shellcheck shell=bash

SENNINGEN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the build needs, then those the tests add.
SENNINGEN_BUILD_PACKAGES=(
    cmake ninja-build g++ pkg-config
    libpcap-dev libyara-dev libpoco-dev libbroker-dev libcaf-dev libssl-dev
    libsqlite3-dev libpq-dev libgtest-dev libgmock-dev libhyperscan-dev rapidjson-dev zlib1g-dev
)
SENNINGEN_TEST_PACKAGES=(python3 python3-jsonschema python3-cryptography iproute2 yara tcpreplay
                         chromium fonts-liberation postgresql)
# The peers and tools of tests/bench/ (tests/bench/network/run.sh and api/run.sh install the
# missing ones).
SENNINGEN_BENCH_PACKAGES=(python3 openssl time tcpdump ngrep libndpi-bin wrk curl sqlite3)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# install_packages PKG...: installs those not installed yet; never upgrades what is there.
install_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]}; run as root, or install them first" >&2
        exit 1
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-upgrade --no-install-recommends "${missing[@]}" >/dev/null
}

# install_browser_test_deps: playwright-core for tests/browser, at the version its committed
# lock file pins, from the npm registry (Chromium itself comes from Debian, above).
install_browser_test_deps() {
    if ! command -v npm >/dev/null; then
        install_packages nodejs npm
    fi
    local dir="$SENNINGEN_ROOT/tests/browser"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        say "installing the browser test's npm packages (tests/browser)"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
    fi
}

# build PRESET [TARGET...]: configures (once) and builds with every core.
build() {
    local preset="$1"
    shift
    local extra=()
    if [ "${CI:-}" = "true" ]; then
        extra+=(-DSENNINGEN_WERROR=ON)
    fi
    say "configuring (${preset})"
    cmake --preset "$preset" "${extra[@]}" >/dev/null
    say "building (${preset})"
    local dir
    dir="$(binary_dir "$preset")"
    if [ $# -gt 0 ]; then
        cmake --build "$dir" --parallel "$(nproc)" --target "$@"
    else
        cmake --build "$dir" --parallel "$(nproc)"
    fi
}

binary_dir() {
    case "$1" in
        dev) echo "$SENNINGEN_ROOT/build" ;;
        asan-ubsan) echo "$SENNINGEN_ROOT/build-asan" ;;
        fuzz) echo "$SENNINGEN_ROOT/build-fuzz" ;;
        release) echo "$SENNINGEN_ROOT/build-release" ;;
        *) echo "unknown preset $1" >&2; exit 1 ;;
    esac
}
