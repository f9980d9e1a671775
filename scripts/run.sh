#!/usr/bin/env bash
# `make run`: serve the API on REFINERY_LISTEN (default 127.0.0.1:8080). With no
# REFINERY_DATABASE_URL, a local PostgreSQL lives under .run/pg (kept between
# runs, stopped on exit). On first start a key for tenant "local" is created
# and kept in .run/local-key (mode 600) so that later starts can print it too.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run
own_pg=""
if [ -z "${REFINERY_DATABASE_URL:-}" ]; then
  REFINERY_DATABASE_URL=$(scripts/pg.sh start .run/pg)
  export REFINERY_DATABASE_URL
  own_pg=1
fi
export REFINERY_DATA_DIR=${REFINERY_DATA_DIR:-$PWD/.run/data}
# Checkpoint folders under .run/models (or the roots you name) can be registered.
mkdir -p .run/models
export REFINERY_MODEL_ROOTS=${REFINERY_MODEL_ROOTS:-$PWD/.run/models}
stop_pg() { [ -n "$own_pg" ] && scripts/pg.sh stop .run/pg; return 0; }
trap stop_pg EXIT

build/refinery migrate
if [ ! -s .run/local-key ]; then
  (umask 077; build/refinery keys create --tenant local >.run/local-key)
fi
key=$(cat .run/local-key)
listen=${REFINERY_LISTEN:-127.0.0.1:8080}
case "$listen" in :*) listen="127.0.0.1$listen" ;; 0.0.0.0:*) listen="127.0.0.1:${listen#*:}" ;; esac
cat <<MSG

  refinery is starting on http://$listen
  API key for tenant "local": $key
  try:
    curl -s -H "Authorization: Bearer $key" http://$listen/v1/jobs

MSG
build/refinery serve &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; stop_pg' INT TERM
wait $pid
