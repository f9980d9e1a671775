#!/usr/bin/env bash
# A throwaway PostgreSQL under a folder of ours, from Debian's postgresql package.
#   pg.sh start DIR   initdb (once) and start on a free 127.0.0.1 port plus a unix
#                     socket in DIR (a restart takes the port it had, when free,
#                     so that clients reconnect to the same conninfo); prints the
#                     libpq conninfo
#   pg.sh url DIR     prints the conninfo of a started cluster
#   pg.sh stop DIR    stops it (the folder stays; rm -rf it to forget the data)
#   pg.sh crash DIR   stops it the way a crash does (immediate: no checkpoint,
#                     clients cut off; the next start recovers from the WAL)
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres`
# system user that the package creates.
set -euo pipefail

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|crash|url DIR" >&2; exit 2; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
url() { echo "host=127.0.0.1 port=$(cat "$dir/port") user=refinery dbname=refinery connect_timeout=5"; }

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

case "$cmd" in
start)
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    # The server must be able to reach its folder through every parent.
    d=$dir; while [ "$d" != "/" ]; do d=$(dirname "$d"); chmod o+x "$d" 2>/dev/null || true; done
  fi
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    url; exit 0
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bindir/initdb" -D "$dir/data" -U refinery -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    [ "$attempt" -eq 1 ] && [ -f "$dir/port" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$(cat "$dir/port")") 2>/dev/null &&
      port=$(cat "$dir/port")
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=${PG_FSYNC:-on} -c synchronous_commit=${PG_SYNC_COMMIT:-on}" \
      start >/dev/null 2>&1 && { echo "$port" >"$dir/port"; break; }
    [ "$attempt" -eq 5 ] && { tail -n 20 "$dir/server.log" >&2; exit 1; }
  done
  # The database named in the conninfo.
  as_owner "$bindir/psql" -h "$dir" -p "$port" -U refinery -d postgres -qAtc \
    "SELECT 1 FROM pg_database WHERE datname='refinery'" | grep -q 1 ||
    as_owner "$bindir/createdb" -h "$dir" -p "$port" -U refinery refinery
  url
  ;;
url)  [ -f "$dir/port" ] || { echo "pg.sh: no cluster started in $dir" >&2; exit 1; }; url ;;
stop) [ -d "$dir/data" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true ;;
crash) as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null ;;
*) echo "usage: pg.sh start|stop|crash|url DIR" >&2; exit 2 ;;
esac
