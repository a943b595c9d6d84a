#!/bin/sh
# Entry point of the platform image: runs `$@` with this service's MQTT account.
# ELDERCARE_SERVICE names the account (ingest, alerting, dashboard, simulator); its login was
# written by setup.sh into $CREDENTIALS_DIR/<name>.user and <name>.pw (mode 0600), so no
# secret is on a command line, in the environment or in the compose file.
set -eu
dir="${CREDENTIALS_DIR:-/run/eldercare/creds}"
if [ -n "${ELDERCARE_SERVICE:-}" ]; then
  if [ ! -f "$dir/$ELDERCARE_SERVICE.user" ]; then
    echo "service.sh: no MQTT account for $ELDERCARE_SERVICE in $dir (run the setup service)" >&2
    exit 78
  fi
  MQTT_USERNAME="$(cat "$dir/$ELDERCARE_SERVICE.user")"
  MQTT_PASSWORD_FILE="$dir/$ELDERCARE_SERVICE.pw"
  export MQTT_USERNAME MQTT_PASSWORD_FILE
fi
exec "$@"
