#!/usr/bin/env bash
# Create .venv and install the project into it; install missing system packages where we may.
# Usage: tools/bootstrap.sh [extra]   (extra: "dev" for the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
EXTRA=${1:-}
PY=${PYTHON:-python3}

need_apt=()
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"; else return 1; fi
}

if ! command -v "$PY" >/dev/null; then
  echo "bootstrap: $PY not found. Install Python 3.11 or newer (Debian: apt-get install --no-install-recommends python3 python3-venv)." >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: $("$PY" --version) is too old; the station needs Python 3.11 or newer." >&2
  exit 1
fi
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=("python3-venv")
fi
# Optional system packages: the camera's pyzbar decoder loads the system's libzbar (Debian/Ubuntu
# libzbar0, libzbar0t64 on newer releases). STATION_SYSTEM_PACKAGES replaces the list ("" for none).
# Without them the station still runs: the camera falls back to another decoder.
optional_apt=(${STATION_SYSTEM_PACKAGES-libzbar0})
# With "dev": systemd-analyze (package systemd) for the unit tests (tests/app/test_systemd_units.py
# verify the units and score their hardening); optional too: without it those tests read the files.
if [ "$EXTRA" = dev ] && [ -z "${STATION_SYSTEM_PACKAGES+set}" ] && ! command -v systemd-analyze >/dev/null; then
  optional_apt+=("systemd")
fi
# With "dev": Debian's chromium for the browser tests (tests/web drive it through Playwright; no
# browser is ever downloaded) and a CJK font, so that their screenshot shows the Chinese.
if [ "$EXTRA" = dev ] && [ -z "${STATION_SYSTEM_PACKAGES+set}" ]; then
  optional_apt+=("chromium" "fonts-noto-cjk")
fi
# With "dev": a C compiler for the clock-step fault tests (tests/faults/stepclock.c, preloaded into
# the daemon to step its wall clock).
if [ "$EXTRA" = dev ] && [ -z "${STATION_SYSTEM_PACKAGES+set}" ] && ! command -v cc >/dev/null; then
  optional_apt+=("gcc" "libc6-dev")
fi
installed() { dpkg -s "$1" >/dev/null 2>&1 || dpkg -s "${1}t64" >/dev/null 2>&1; }
# --no-install-recommends: libzbar0 alone would pull in ImageMagick and Ghostscript (recommends).
apt_install() {
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@"
}
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${need_apt[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing system packages: ${missing[*]}"
    if ! apt_install "${missing[@]}"; then
      echo "bootstrap: cannot install ${missing[*]} (not root, no sudo). Ask an administrator to run:" >&2
      echo "    sudo apt-get install --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
fi
if [ ${#optional_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${optional_apt[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing optional system packages: ${missing[*]}"
    if ! apt_install "${missing[@]}"; then
      echo "bootstrap: could not install ${missing[*]} (optional: the camera's pyzbar decoder; for the tests, systemd-analyze, chromium, a C compiler)." >&2
      echo "bootstrap: continuing without; to add it, ask an administrator to run:" >&2
      echo "    sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    fi
  fi
fi

if [ "$EXTRA" = dev ] && ! command -v chromium >/dev/null; then
  echo "bootstrap: no chromium: the browser tests (tests/web) will be skipped. To run them, ask" >&2
  echo "    an administrator to run: sudo apt-get install --no-install-recommends chromium fonts-noto-cjk" >&2
fi
if [ "$EXTRA" = dev ] && ! command -v cc >/dev/null; then
  echo "bootstrap: no C compiler: the clock-step tests (tests/faults) will be skipped. To run them," >&2
  echo "    ask an administrator to run: sudo apt-get install --no-install-recommends gcc libc6-dev" >&2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PY" -m venv "$VENV"
fi
spec="."
[ -n "$EXTRA" ] && spec=".[$EXTRA]"
echo "bootstrap: installing $spec into $VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
