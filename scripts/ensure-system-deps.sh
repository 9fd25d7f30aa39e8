#!/usr/bin/env bash
# Make sure the system programs that the test suite and the benchmarks start
# (throwaway Redis and PostgreSQL servers, see support/services.py) are installed.
#
# Fast and silent when everything is present: no apt-get update in that case.
# When something is missing and we are root on Debian/Ubuntu, it is installed
# with apt-get; otherwise we exit 1 and print the exact command to run.
set -euo pipefail

# Where PostgreSQL server binaries live when they are not on PATH (Debian keeps
# them out of PATH): `pg_config --bindir`, then /usr/lib/postgresql/*/bin,
# newest version first. support/services.py searches the same places.
extra_bin_dirs() {
    if command -v pg_config >/dev/null 2>&1; then
        pg_config --bindir 2>/dev/null || true
    fi
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
        echo "$d"
    done
}

# A font with Chinese glyphs, for Chromium: the console and preference center are also
# in Simplified Chinese, and the README's screenshots are taken by the browser tests.
has_cjk_font() {
    command -v fc-list >/dev/null 2>&1 && [[ -n $(fc-list :lang=zh 2>/dev/null) ]]
}

find_command() {
    local cmd=$1 dir
    if [[ $cmd == cjk-font ]]; then
        has_cjk_font
        return
    fi
    command -v "$cmd" >/dev/null 2>&1 && return 0
    while IFS= read -r dir; do
        [[ -n $dir && -x $dir/$cmd ]] && return 0
    done < <(extra_bin_dirs)
    return 1
}

missing_commands=()
missing_packages=()

# require COMMAND PACKAGE: records PACKAGE for installation if COMMAND is absent.
require() {
    local cmd=$1 pkg=$2 p
    find_command "$cmd" && return 0
    missing_commands+=("$cmd")
    for p in "${missing_packages[@]}"; do
        [[ $p == "$pkg" ]] && return 0
    done
    missing_packages+=("$pkg")
}

# ---- The requirements: one line per (command, Debian package). -------------
require redis-server redis-server
require initdb       postgresql
require pg_ctl       postgresql
require postgres     postgresql
# The console's accessibility tests install axe-core (npm package) with npm (support/npm.py).
require npm          npm
# The preference-center browser tests drive Debian's Chromium (/usr/bin/chromium)
# through Playwright; Playwright's own browser download is not used.
require chromium     chromium
require cjk-font     fonts-noto-cjk
# ---------------------------------------------------------------------------

is_debian_like() {
    [[ -r /etc/os-release ]] || return 1
    local id id_like
    id=$(. /etc/os-release && echo "${ID:-}")
    id_like=$(. /etc/os-release && echo "${ID_LIKE:-}")
    [[ " $id $id_like " == *" debian "* || " $id $id_like " == *" ubuntu "* ]]
}

if ((${#missing_packages[@]})); then
    echo "ensure-system-deps: missing ${missing_commands[*]}" >&2
    if [[ $EUID -eq 0 ]] && is_debian_like && command -v apt-get >/dev/null 2>&1; then
        echo "ensure-system-deps: installing ${missing_packages[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"
        still_missing=()
        for cmd in "${missing_commands[@]}"; do
            find_command "$cmd" || still_missing+=("$cmd")
        done
        if ((${#still_missing[@]})); then
            echo "ensure-system-deps: still missing after install: ${still_missing[*]}" >&2
            exit 1
        fi
    else
        echo "Install them, then re-run:" >&2
        if command -v apt-get >/dev/null 2>&1; then
            echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing_packages[*]}" >&2
        else
            echo "  (Debian package names: ${missing_packages[*]}; e.g. macOS: brew install redis postgresql@15)" >&2
        fi
        exit 1
    fi
fi

# PostgreSQL refuses to run as root, so when the tests run as root they start it
# as the `postgres` user (the Debian package creates it; other installs may not).
if [[ $EUID -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
    echo "ensure-system-deps: creating system user 'postgres' (PostgreSQL will not run as root)" >&2
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin postgres
fi
