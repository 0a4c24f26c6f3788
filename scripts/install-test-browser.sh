#!/bin/sh
# Installs the headless browser that tests/test_report.py renders the HTML report in
# (Debian's chromium package); the test runs it when chromium is missing. Where it cannot
# install (not root, no network) the rendering tests are skipped saying so, or fail under
# FSBARGE_REQUIRE_BROWSER=1 (.ci/run).
set -eu
if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "run as root, or: sudo apt-get install --no-install-recommends chromium" >&2
    exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
