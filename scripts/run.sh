#!/usr/bin/env bash
# `make run`: serve the API on REFINERY_LISTEN (default 127.0.0.1:8080). With no
# REFINERY_DATABASE_URL, a local PostgreSQL lives under .run/pg (kept between
# runs, stopped on exit). On first start a key for tenant "local" is created,
# shown once and kept in .run/local-key (mode 600); later starts say where it is.
#
# It cannot break a running instance: one `make run` per checkout (a lock in
# .run/run.lock, the running one's pid in .run/run.pid) and a taken port are
# refused before anything is started or stopped. REFINERY_RUN_DIR moves .run
# elsewhere (the tests use their own).
set -euo pipefail
cd "$(dirname "$0")/.."
run=${REFINERY_RUN_DIR:-.run}
mkdir -p "$run"
run=$(cd "$run" && pwd)
# How to name a file of the run folder to the user: relative when it is ours.
show() { case "$1" in "$PWD"/*) echo "${1#"$PWD"/}" ;; *) echo "$1" ;; esac; }

listen=${REFINERY_LISTEN:-127.0.0.1:8080}
port=${listen##*:}
host=${listen%:*}
case "$host" in "" | 0.0.0.0) probe=127.0.0.1 ;; *) probe=$host ;; esac

# One instance per checkout: the lock is held for the life of this script (and
# of the server, which inherits it); a second one finds it taken and leaves.
exec 9>>"$run/run.lock"
if ! flock -n 9; then
  pid=$(cat "$run/run.pid" 2>/dev/null || true)
  url=$(cat "$run/url" 2>/dev/null || true)
  echo "make run: refinery is already running from this checkout${pid:+ (pid $pid)}${url:+, serving on $url};" \
    "nothing was started or stopped. Use that one, or stop it first (Ctrl-C in its terminal${pid:+, or kill $pid})." >&2
  exit 1
fi
echo $$ >"$run/run.pid"
rm -f "$run/url"
# A port another program holds: say so before starting anything.
if [ "$port" != 0 ] && (exec 3<>"/dev/tcp/$probe/$port") 2>/dev/null; then
  echo "make run: $probe:$port is in use by another program; nothing was started. Free it, or pick" \
    "another address: REFINERY_LISTEN=127.0.0.1:8081 make run (port 0 picks a free one)." >&2
  exit 1
fi

own_pg=""
pid=""
demo_pid=""
stop_pg() { [ -n "$own_pg" ] && scripts/pg.sh stop "$run/pg" 9>&-; return 0; }
# Ctrl-C or TERM: stop the server (it hands running jobs back to the queue),
# then our PostgreSQL, and end cleanly (exit 0: make has nothing to report).
finish() {
  trap - INT TERM
  if [ -n "$demo_pid" ]; then pkill -TERM -P "$demo_pid" 2>/dev/null || true; kill -TERM "$demo_pid" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  stop_pg
  rm -f "$run/run.pid" "$run/url"
  exit 0
}
trap finish INT TERM
trap 'stop_pg; rm -f "$run/run.pid" "$run/url"' EXIT

if [ -z "${REFINERY_DATABASE_URL:-}" ]; then
  # the server must not inherit the lock: it may outlive us
  REFINERY_DATABASE_URL=$(scripts/pg.sh start "$run/pg" 9>&-)
  export REFINERY_DATABASE_URL
  own_pg=1
fi
export REFINERY_DATA_DIR=${REFINERY_DATA_DIR:-$run/data}
# Checkpoint folders under .run/models (or the roots you name) can be registered;
# the shipped demo's models too.
mkdir -p "$run/models"
export REFINERY_MODEL_ROOTS=${REFINERY_MODEL_ROOTS:-$run/models}:$PWD/demo/models

build/refinery migrate
key_file=$(show "$run/local-key")
new_key=""
if [ ! -s "$run/local-key" ]; then
  # its "shown only this once" note is ours to keep: the banner shows the key
  if ! out=$( (umask 077; build/refinery keys create --tenant local >"$run/local-key") 2>&1); then
    echo "$out" >&2
    rm -f "$run/local-key"
    exit 1
  fi
  new_key=$(cat "$run/local-key")
fi

# The banner once the server listens, with the address it really bound
# (port 0 picks one): the server's own log line says which.
banner() {
  local url=$1
  echo "$url" >"$run/url"
  {
    echo
    echo "  refinery is serving on $url"
    if [ -n "$new_key" ]; then
      echo "  API key for tenant \"local\" (created now, shown this once; kept in $key_file, mode 600):"
      echo "    $new_key"
    else
      echo "  API key for tenant \"local\": kept in $key_file (mode 600)"
    fi
    echo "  try:"
    echo "    curl -s -H \"Authorization: Bearer \$(cat $key_file)\" $url/v1/jobs"
    echo "  Ctrl-C stops it (and the PostgreSQL it started)."
    echo
  } >&2
}
watch_log() {
  # Ctrl-C reaches this reader too: it keeps reading until the server, which
  # handles the signal, has logged its shutdown and closed the pipe
  trap '' INT TERM
  local line shown=""
  while IFS= read -r line; do
    printf '%s\n' "$line" >&2
    if [ -z "$shown" ] && [[ $line =~ listening\ on\ http://([^\ \"]+) ]]; then
      local addr=${BASH_REMATCH[1]}
      case "$addr" in 0.0.0.0:*) addr="127.0.0.1:${addr#*:}" ;; esac
      banner "http://$addr"
      shown=1
    fi
  done
}
build/refinery serve 2> >(watch_log) &
pid=$!
echo "$pid" >"$run/run.pid"
# The demo (scripts/demo.sh): the pipeline on the shipped Vessa Isles, once
# the server listens; REFINERY_DEMO=0 serves without it. The server keeps
# serving after it ends.
if [ "${REFINERY_DEMO:-1}" != 0 ]; then
  (
    trap - INT TERM
    for _ in $(seq 600); do
      [ -s "$run/url" ] && break
      kill -0 "$pid" 2>/dev/null || exit 0
      sleep 0.1
    done
    [ -s "$run/url" ] || exit 0
    scripts/demo.sh "$(cat "$run/url")" "$run" 9>&- ||
      echo "make run: the demo did not finish (above); the server goes on serving." >&2
  ) &
  demo_pid=$!
fi
set +e
wait "$pid"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  echo "make run: the server stopped (exit $rc); see its log above." >&2
  exit "$rc"
fi
