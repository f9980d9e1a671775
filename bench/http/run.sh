#!/usr/bin/env bash
# bench/http: wrk on loopback against GET /v1/jobs/{id} and POST /v1/jobs (a
# test job type that finishes at once, claimed by the server's workers), beside
# the same wrk run against a minimal libmicrohttpd responder (our ceiling).
# Prints requests/s and p99 per target, the medians of BENCH_RUNS runs, and
# the ratios. PostgreSQL runs with its default durability (fsync on).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${BENCH_RUNS:-3}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_HTTP_THREADS:-8}
tmp=$(mktemp -d /tmp/refinery-bench.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true;
            scripts/pg.sh stop "$tmp/pg"; rm -rf "$tmp"; }
trap cleanup EXIT

url=$(scripts/pg.sh start "$tmp/pg")
# The unix socket, as a co-located deployment would use.
[ "${BENCH_PG_TCP:-0}" = 1 ] || url=$(echo "$url" | sed "s|host=127.0.0.1|host=$tmp/pg|")
export REFINERY_DATABASE_URL=$url
build/refinery migrate >/dev/null 2>&1
export BENCH_KEY=$(build/refinery keys create --tenant bench 2>/dev/null)

port_static=$((30000 + RANDOM % 10000)); port_api=$((port_static + 1))
build/bench/http/static "$port_static" "$threads" 2>/dev/null & pids+=($!)
REFINERY_LISTEN=127.0.0.1:$port_api REFINERY_TEST_JOBS=1 REFINERY_ACCESS_LOG=0 \
  REFINERY_WORKERS=${BENCH_WORKERS:-4} REFINERY_HTTP_THREADS=$threads REFINERY_DATA_DIR=$tmp/data \
  build/refinery serve 2>"$tmp/serve.log" & pids+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port_api/readyz" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$port_static/" >/dev/null 2>&1 && break
  sleep 0.1
done
new_job() {
  curl -sf -H "Authorization: Bearer $BENCH_KEY" -d "$1" "http://127.0.0.1:$port_api/v1/jobs" |
    sed -n 's/.*"id":"\(job_[0-9a-z]*\)".*/\1/p'
}
# A finished job (served from the cache of finished jobs) and a running one
# (read from PostgreSQL on every request).
job=$(new_job '{"type":"test.noop"}')
live=$(new_job '{"type":"test.sleep","params":{"ms":3600000,"steps":3600}}')

# One wrk run; prints "rps p99_ms".
wrk_run() {
  local out rps p99
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" 2>&1)
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}')
  echo "${rps:-0} ${p99:-0}"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
psql_q() { psql "$url" -qAtX -c "$1"; }

declare -A rps p99
for target in static get live post; do
  r=(); l=(); claimed=()
  for i in $(seq 1 "$runs"); do
    case $target in
      static) res=$(wrk_run "http://127.0.0.1:$port_static/") ;;
      get) res=$(wrk_run -s bench/http/get.lua "http://127.0.0.1:$port_api/v1/jobs/$job") ;;
      live) res=$(wrk_run -s bench/http/get.lua "http://127.0.0.1:$port_api/v1/jobs/$live") ;;
      post)
        before=$(psql_q "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
        t0=$(date +%s.%N)
        res=$(wrk_run -s bench/http/post.lua "http://127.0.0.1:$port_api/v1/jobs")
        # Claimed and finished within the run and the second after it.
        sleep 1
        t1=$(date +%s.%N)
        after=$(psql_q "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
        claimed+=("$(echo "($after - $before) / ($t1 - $t0)" | bc -l)")
        ;;
    esac
    r+=("${res% *}"); l+=("${res#* }")
  done
  rps[$target]=$(printf '%s\n' "${r[@]}" | median)
  p99[$target]=$(printf '%s\n' "${l[@]}" | median)
  [ "$target" = post ] && claimed_rate=$(printf '%s\n' "${claimed[@]}" | median)
done
left=$(psql_q "SELECT count(*) FROM jobs WHERE status <> 'succeeded' AND type = 'test.noop'")
# The backlog the flood left, drained with no request load: the workers' own
# rate (latency-bound: CPU stays partly idle), beside their rate under the flood.
before=$(psql_q "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
t0=$(date +%s.%N)
sleep "$secs"
t1=$(date +%s.%N)
after=$(psql_q "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
drain_rate=$(echo "($after - $before) / ($t1 - $t0)" | bc -l)

printf '\nbench/http  (%s cores, wrk -t2 -c%s -d%ss, median of %s runs)\n' "$(nproc)" "$conns" "$secs" "$runs"
printf '  %-34s %10s req/s  p99 %8s ms\n' "static libmicrohttpd (ceiling)" "${rps[static]}" "${p99[static]}"
printf '  %-34s %10s req/s  p99 %8s ms   ratio %.2f of ceiling\n' "GET /v1/jobs/{id} (finished job)" "${rps[get]}" "${p99[get]}" \
  "$(echo "${rps[get]} / ${rps[static]}" | bc -l)"
printf '  %-34s %10s req/s  p99 %8s ms   ratio %.2f of ceiling\n' "GET /v1/jobs/{id} (running job)" "${rps[live]}" "${p99[live]}" \
  "$(echo "${rps[live]} / ${rps[static]}" | bc -l)"
printf '  %-34s %10s req/s  p99 %8s ms   ratio %.2f of ceiling\n' "POST /v1/jobs (accepted)" "${rps[post]}" "${p99[post]}" \
  "$(echo "${rps[post]} / ${rps[static]}" | bc -l)"
printf '  %-34s %10.0f jobs/s (%s not finished at the end)\n' "POST /v1/jobs (claimed and run)" "$claimed_rate" "$left"
printf '  %-34s %10.0f jobs/s (%s workers, that backlog, no requests)\n' "claimed and run, no POST load" "$drain_rate" "${BENCH_WORKERS:-4}"
