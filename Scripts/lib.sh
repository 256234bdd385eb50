# Shared by the Scripts: installing Debian packages and running helpers. Source it; do not run it.

# Debian packages heatbridge needs to build, test and demo.
HEATBRIDGE_APT_PACKAGES=(libmosquitto-dev libcurl4-openssl-dev libsqlite3-dev libyaml-dev mosquitto mosquitto-clients sqlite3 binutils systemd strace socat openssl nginx-light libnginx-mod-http-js faketime valgrind curl wrk)

# The shipped build: release, Swift stdlib linked statically, DWARF 4 debug info (valgrind 3.19 cannot read the
# toolchain's default DWARF 5 and gives up: Scripts/memcheck).
HEATBRIDGE_RELEASE_FLAGS=(-c release --static-swift-stdlib --scratch-path .build-static -Xswiftc -dwarf-version=4 -Xcc -gdwarf-4)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs whatever of HEATBRIDGE_APT_PACKAGES (plus "$@") is missing: one apt-get update, one install.
ensure_packages() {
    local missing=() p
    for p in "${HEATBRIDGE_APT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# mosquitto lives in /usr/sbin, which is not on every PATH.
mosquitto_bin() { command -v mosquitto || echo /usr/sbin/mosquitto; }

# Waits until 127.0.0.1:$1 accepts connections (max $2 seconds).
wait_port() {
    local port=$1 limit=${2:-15} i=0
    until (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt $((limit * 10)) ] && return 1
        sleep 0.1
    done
}

# Writes a private mosquitto config listening on 127.0.0.1:$2 into $1. set_tcp_nodelay: without it the broker's
# Nagle delay adds ~40 ms to every command result (measured with Scripts/bench).
# A private broker with the settings heatbridge ships for its broker (etc/mosquitto/heatbridge.conf).
write_broker_conf() {
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' "$2" > "$1"
    cat "$(dirname "${BASH_SOURCE[0]}")/../etc/mosquitto/heatbridge.conf" >> "$1"
}

# Runs a build command, hiding swift's per-file progress lines; keeps its exit status.
quiet() {
    local s
    set +e
    "$@" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] '
    s=${PIPESTATUS[0]}
    set -e
    return "$s"
}
