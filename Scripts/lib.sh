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

# Home Assistant for the test that checks discovery and the energy dashboard the way Home Assistant reads them
# (IntegrationTests/HomeAssistantRealTests), from PyPI into .build-ha/venv. Pinned: 2025.4.4 is the newest release
# for Python 3.13.0, and the list below is what its default integrations plus mqtt, recorder and energy require (it
# runs with --skip-pip, so nothing is fetched at its start). Needs a Python 3.13 (python3.13 on PATH, or pyenv's).
HEATBRIDGE_HA_VERSION=2025.4.4
HEATBRIDGE_HA_REQUIREMENTS=(Pillow==11.1.0 SQLAlchemy==2.0.39 cronsim==2.6 fnv-hash-fast==1.4.0 home-assistant-frontend==20250411.0
    ifaddr==0.2.0 isal==1.7.1 paho-mqtt==2.1.0 psutil-home-assistant==0.0.1 securetar==2025.2.1 sentry-sdk==1.45.1)
ensure_home_assistant() {
    local venv=.build-ha/venv
    if [ -x "$venv/bin/hass" ] && "$venv/bin/hass" --version 2>/dev/null | grep -qx "$HEATBRIDGE_HA_VERSION"; then return 0; fi
    local py="" c
    # pyenv's shims answer to python3.13 without being one, so each candidate is asked for its version.
    for c in $(ls -d "${PYENV_ROOT:-/root/.pyenv}"/versions/3.13*/bin/python3 2>/dev/null | sort -V) $(command -v python3.13 || true); do
        "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && { py=$c; break; }
    done
    [ -n "$py" ] || die "Home Assistant $HEATBRIDGE_HA_VERSION needs Python 3.13: none found (python3.13, or pyenv's 3.13.x)"
    log "installing Home Assistant $HEATBRIDGE_HA_VERSION from PyPI into $venv (with $py)"
    rm -rf "$venv"
    "$py" -m venv "$venv" || die "cannot make a venv with $py"
    "$venv/bin/pip" install -q --disable-pip-version-check "homeassistant==$HEATBRIDGE_HA_VERSION" "${HEATBRIDGE_HA_REQUIREMENTS[@]}" \
        || die "pip install homeassistant==$HEATBRIDGE_HA_VERSION failed"
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
