#!/usr/bin/env bash
# Install the station on a Debian box (as root), or remove it. `make install` / `make uninstall`.
#   install:   a venv in /opt/station with the package from this checkout, the config skeleton
#              in /etc/station/station.toml (an existing one is never overwritten), the units in
#              /etc/systemd/system, the admin's `station` command in /usr/local/bin, and the
#              `station` system user (groups dialout and video).
#   uninstall: the units, /opt/station and /usr/local/bin/station; never /var/lib/station (the
#              records) nor /etc/station (configuration and secret), nor the user.
# DESTDIR=/some/dir stages everything under that folder instead and touches nothing else (no
# user, no systemctl): for a look at what would be installed. Its venv is not relocatable.
set -euo pipefail
cd "$(dirname "$0")/.."
ACTION=${1:-install}
DESTDIR=${DESTDIR:-}
OPT=/opt/station
CONF=/etc/station
UNITDIR=/etc/systemd/system
BIN=/usr/local/bin/station
PY=${PYTHON:-python3}
UNITS=(station.service station-web.service station-backup.service station-backup.timer)
STATE=/var/lib/station
MARKER=.station-first-start  # station/app/daemon.py FIRST_START: the first `station run` creates

say() { echo "install: $*"; }
live() { [ -z "$DESTDIR" ]; }
systemd_up() { live && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if live && [ "$(id -u)" != 0 ]; then
  echo "install: run as root (sudo make $ACTION), or give DESTDIR=DIR for a staged copy" >&2
  exit 1
fi

uninstall() {
  if systemd_up; then
    systemctl disable --now station-backup.timer station-web.service station.service \
      2>/dev/null || true
  fi
  for unit in "${UNITS[@]}"; do rm -f "$DESTDIR$UNITDIR/$unit"; done
  rm -rf "$DESTDIR$UNITDIR/station-web.service.d/50-lan.conf"
  rm -rf "$DESTDIR$UNITDIR/station-backup.service.d/50-dir.conf"
  rm -rf "$DESTDIR$OPT"
  rm -f "$DESTDIR$BIN"
  if systemd_up; then systemctl daemon-reload; fi
  say "removed the units, $OPT and $BIN"
  say "kept /var/lib/station (the records), $CONF (configuration, secret) and the user station"
}

make_user() {
  if ! live; then return; fi
  if ! id station >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/station --no-create-home \
      --shell /usr/sbin/nologin --comment "filling station controller" station
    say "created the system user station"
  fi
  for group in dialout video; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  usermod -a -G dialout,video station
}

install_package() {
  say "creating $DESTDIR$OPT/.venv and installing the package from $(pwd)"
  install -d -m 0755 "$DESTDIR$OPT"
  "$PY" -m venv --clear "$DESTDIR$OPT/.venv"
  "$DESTDIR$OPT/.venv/bin/python" -m pip install -q --disable-pip-version-check .
  install -m 0644 README.md "$DESTDIR$OPT/README.md"
  install -m 0644 config/station.example.toml "$DESTDIR$OPT/station.example.toml"
}

install_config() {
  install -d -m 0755 "$DESTDIR$CONF"
  if [ -e "$DESTDIR$CONF/station.toml" ]; then
    say "kept the existing $CONF/station.toml (the new example is $OPT/station.example.toml)"
  else
    install -m 0640 config/station.example.toml "$DESTDIR$CONF/station.toml"
    if live; then chgrp station "$CONF/station.toml"; fi
    say "installed the configuration skeleton $CONF/station.toml: edit it"
  fi
}

install_units() {
  install -d -m 0755 "$DESTDIR$UNITDIR" "$(dirname "$DESTDIR$BIN")"
  for unit in "${UNITS[@]}"; do install -m 0644 "systemd/$unit" "$DESTDIR$UNITDIR/$unit"; done
  install -m 0755 tools/station-admin.sh "$DESTDIR$BIN"
  if systemd_up; then systemctl daemon-reload; fi
  say "installed ${UNITS[*]} in $UNITDIR and $BIN"
}

install_state() {
  # The state folder before the first start (doctor checks it), with the first-start marker
  # when no store is there yet: the first `station run` creates the store and removes it. A
  # store path that later changes (a typo) then finds no marker and refuses to start empty.
  install -d -m 0750 "$DESTDIR$STATE"
  if live; then chown station:station "$STATE"; fi
  if ls "$DESTDIR$STATE"/*.db >/dev/null 2>&1; then
    say "kept $STATE and its store (no first-start marker)"
  else
    install -m 0640 /dev/null "$DESTDIR$STATE/$MARKER"
    if live; then chown station:station "$STATE/$MARKER"; fi
    say "created $STATE with the first-start marker: the first start creates the store"
  fi
}

install_backup_dropin() {
  # The backup unit's mount and only writable folder, from [backup] dir of the configuration.
  local dir="$DESTDIR$UNITDIR/station-backup.service.d"
  install -d -m 0755 "$dir"
  if "$DESTDIR$OPT/.venv/bin/station" backup --config "$DESTDIR$CONF/station.toml" \
      --systemd-dropin >"$dir/50-dir.conf.new"; then
    mv "$dir/50-dir.conf.new" "$dir/50-dir.conf"
    say "wrote $UNITDIR/station-backup.service.d/50-dir.conf from [backup] dir"
  else
    rm -f "$dir/50-dir.conf.new"
    say "could not read [backup] of $CONF/station.toml: fix it, then run make install again"
  fi
  if systemd_up; then systemctl daemon-reload; fi
}

install_lan_dropin() {
  # The web unit's IPAddressAllow= for the tablets, from [web] allow of the configuration.
  local dir="$DESTDIR$UNITDIR/station-web.service.d"
  install -d -m 0755 "$dir"
  if "$DESTDIR$OPT/.venv/bin/station" web --config "$DESTDIR$CONF/station.toml" \
      --systemd-dropin >"$dir/50-lan.conf.new"; then
    mv "$dir/50-lan.conf.new" "$dir/50-lan.conf"
    say "wrote $UNITDIR/station-web.service.d/50-lan.conf from [web] allow"
  else
    rm -f "$dir/50-lan.conf.new"
    say "could not read [web] of $CONF/station.toml: fix it, then run make install again"
  fi
  if systemd_up; then systemctl daemon-reload; fi
}

next_steps() {
  cat <<STEPS

Next steps (README: "From a new box to a running station"):
  1. Put the city app secret in $CONF/app_secret:  install -m 0600 /dev/null $CONF/app_secret
     then write the secret into it (the units pass it as a credential; it stays root-only).
  2. Edit $CONF/station.toml: the unit, the city, every rig and reader, [backup] dir
     (then run make install again: it writes the units' drop-ins from [web] and [backup]).
  3. Check everything:     station doctor
  4. Start and enable:     systemctl enable --now station.service station-web.service \\
                               station-backup.timer
  5. Follow the log:       journalctl -u station -f
STEPS
}

case "$ACTION" in
  install)
    make_user
    install_package
    install_config
    install_units
    install_state
    install_lan_dropin
    install_backup_dropin
    next_steps
    ;;
  uninstall) uninstall ;;
  *) echo "usage: tools/install.sh install|uninstall" >&2; exit 2 ;;
esac
