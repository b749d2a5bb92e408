#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Debian's ffmpeg pulls in libsrt1.5-gnutls, which the relay's SRT door (relay/intake/srt.py)
# loads with ctypes and tests/e2e/test_live_srt.py uses; with ffmpeg installed, it is there.
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
[ -e /usr/lib/x86_64-linux-gnu/libmagic.so.1 ] || ldconfig -p 2>/dev/null | grep -q libmagic.so.1 \
  || need_apt+=(libmagic1)
# tests/e2e/test_proxy.py runs deploy/nginx/relay.conf for real.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# tests/browser/ drive Debian's chromium through Playwright (never `playwright install`), and
# run axe-core, from npm by package-lock.json.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# axe-core for the accessibility checks in tests/browser/, exactly as locked.
if [ ! -f node_modules/axe-core/axe.min.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# Bytecode for our own modules, written once: where PYTHONDONTWRITEBYTECODE is set (CI's
# machines set it), every relay, command and media worker a test starts compiled ~130 modules
# from source, ~0.3 s of CPU each time (pip compiles what it installs, so only ours lacked it).
.venv/bin/python -m compileall -q -j 0 relay handlers tests bench >/dev/null
.venv/bin/ruff check relay handlers tests
exec .venv/bin/python -m pytest "$@"
