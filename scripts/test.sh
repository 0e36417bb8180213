#!/usr/bin/env bash
# Install what the tests need into .venv (and Debian's Chromium for the browser tests), then run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing and this is not root; browser tests will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
