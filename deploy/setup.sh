#!/bin/sh
# One-shot set-up of a compose deployment, safe to run at every `docker compose up`.
# `setup.sh platform`: the schema, the least-privilege database roles and their login users
# (`db roles` after every `db migrate`: grants are per table, so new tables get their rights
# only then; passwords from ELDERCARE_DB_PASSWORD_<SVC>[_FILE]), and one MQTT account per
# service (issued once, kept). Runs as the database owner, the only login that runs DDL.
# `setup.sh broker` (run as Mosquitto's uid): the broker's TLS material (a private CA, once)
# and the configuration with its password and ACL files.
set -eu
creds="${CREDENTIALS_DIR:-/run/eldercare/creds}"
broker="${BROKER_DIR:-/broker}"
if [ "${1:-}" = broker ]; then
  host="${BROKER_HOSTNAME:?set BROKER_HOSTNAME to the name devices use for the broker}"
  mkdir -p "$broker/tls"
  if [ ! -f "$broker/tls/server.crt" ]; then
    eldercare gateway certs --out "$broker/tls" --host "$host"
  fi
  # Plain MQTT on the compose network only (no port published); TLS 8883 for devices.
  exec eldercare gateway broker-config --out "$broker" --bind 0.0.0.0 \
    --tls-dir "$broker/tls" --run-as mosquitto
fi
eldercare db migrate && eldercare db roles
mkdir -p "$creds"
for name in ingest alerting dashboard simulator; do
  if [ ! -f "$creds/$name.pw" ]; then
    eldercare gateway creds issue "$name" --service --out "$creds/$name.json"
    python - "$creds" "$name" <<'PY'
import json, os, sys
d, n = sys.argv[1], sys.argv[2]
cred = json.load(open(f"{d}/{n}.json"))
for ext, value in (("user", cred["username"]), ("pw", cred["password"])):
    fd = os.open(f"{d}/{n}.{ext}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, value.encode()); os.close(fd)
os.remove(f"{d}/{n}.json")
PY
  fi
done
