#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the test suite on 127.0.0.1:${PGPORT:-55432} and
# prints the URL to use as FERRID_TEST_DATABASE. Installs PostgreSQL from Debian's packages
# when it is missing. Usage: eval "$(bash .ci/postgres.sh)"
set -euo pipefail
port="${PGPORT:-55432}"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends postgresql >&2
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
data=$(mktemp -d /tmp/ferrid-pg.XXXXXX)
# initdb refuses to run as root: the cluster belongs to the postgres account.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$data"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$bin/initdb" -D "$data/db" -A trust -U ferrid >&2
"${as_pg[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w \
  -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off" start >&2
echo "export FERRID_TEST_DATABASE=postgres://ferrid@127.0.0.1:$port/postgres"
echo "export FERRID_TEST_PG_BIN=$bin"
echo "export FERRID_TEST_PG_DATA=$data/db"
