#!/bin/sh
# `station` for an administrator on an installed box (make install puts this in
# /usr/local/bin/station). Run by root, it runs the real command as the service user `station`,
# with the app secret from /etc/station/app_secret (what the units load as a credential), so
# that files it creates in /var/lib/station belong to the daemon and serial ports open as they
# would for it. Run by anyone else, it runs the command as that user.
set -eu
BIN=/opt/station/.venv/bin/station
if [ "$(id -u)" != 0 ]; then
  exec "$BIN" "$@"
fi
if [ -z "${STATION_APP_SECRET:-}" ] && [ -r /etc/station/app_secret ]; then
  STATION_APP_SECRET=$(cat /etc/station/app_secret)
  export STATION_APP_SECRET
fi
exec setpriv --reuid=station --regid=station --init-groups --inh-caps=-all \
  --bounding-set=-all -- "$BIN" "$@"
