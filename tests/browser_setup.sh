#!/usr/bin/env bash
# Browser for tests/test_browser.py: Debian's Chromium (Playwright drives it; its own
# browser download is never used, it cannot reach the network here). Idempotent, quiet.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser_setup: /usr/bin/chromium is missing and apt-get is not available; install Chromium yourself" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "browser_setup: /usr/bin/chromium is missing; run as root or install sudo to install it" >&2
        exit 1
    fi
fi

echo "browser_setup: installing chromium (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
${SUDO[@]+"${SUDO[@]}"} apt-get update -qq >/dev/null
${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq chromium >/dev/null

if [ ! -x /usr/bin/chromium ]; then
    echo "browser_setup: apt-get finished but /usr/bin/chromium is still missing" >&2
    exit 1
fi
