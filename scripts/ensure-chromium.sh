#!/usr/bin/env bash
# Make sure a headless Chromium is there for the HTML report tests (tests/runtime/report/test_reports.py).
#
# Idempotent and quiet: with a Chromium on PATH it only says which; without one, as root on a
# Debian/Ubuntu machine, it installs the `chromium` package with apt-get. It never fails the
# caller (`make test` runs it before pytest): when it cannot install, it says why, and the tests
# decide (they fail under CI=true, and are skipped elsewhere).
set -u

find_chromium() {
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

version_of() {
    "$1" --version 2>/dev/null | head -n 1
}

if path=$(find_chromium); then
    echo "ensure-chromium: already installed: $path ($(version_of "$path"))"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium: chromium is missing and this is not root; install it with" \
         "'sudo apt-get install -y chromium' (the HTML report tests are skipped, or fail under CI=true)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: chromium is missing and there is no apt-get here; install Chromium" \
         "with this system's package manager (the HTML report tests are skipped, or fail under CI=true)" >&2
    exit 0
fi

log=$(mktemp "${TMPDIR:-/tmp}/ensure-chromium.XXXXXX.log")
echo "ensure-chromium: installing chromium with apt-get (log: $log) ..."
if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1 \
        && path=$(find_chromium); then
    echo "ensure-chromium: installed $path ($(version_of "$path"))"
    rm -f "$log"
else
    echo "ensure-chromium: apt-get could not install chromium; last lines of $log:" >&2
    tail -n 15 "$log" >&2
fi
exit 0
