#!/bin/sh
# First start (an empty $PGDATA): initdb, then, on a server that listens only
# on its socket (so that the TCP health check stays red meanwhile), the role
# $POSTGRES_USER with $POSTGRES_PASSWORD and the database $POSTGRES_DB it
# owns. Every start: exec postgres listening on all addresses, clients
# authenticated with SCRAM-SHA-256. Extra arguments go to postgres (-c k=v).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] ||
    { echo "refinery-postgres: POSTGRES_PASSWORD is not set (compose: REFINERY_DB_PASSWORD)" >&2; exit 1; }
  initdb -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /var/run/postgresql" -w -t 60 start >/dev/null
  psql -h /var/run/postgresql -U postgres -d postgres -qX -v ON_ERROR_STOP=1 \
    -v user="$POSTGRES_USER" -v db="$POSTGRES_DB" -v pw="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "refinery-postgres: cluster initialised (role $POSTGRES_USER, database $POSTGRES_DB)" >&2
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql "$@"
