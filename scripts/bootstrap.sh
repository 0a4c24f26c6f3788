#!/bin/sh
# Create the project virtualenv. On a fresh Debian 12 the venv module needs the
# python3-venv package; install it when we can (root), otherwise say how.
set -eu
py="$1"; venv="$2"
if [ -x "$venv/bin/python" ]; then exit 0; fi
if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-venv (needed to create $venv)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "fsbarge: Python's venv module is missing; run: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
"$py" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
