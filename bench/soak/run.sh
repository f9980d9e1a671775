#!/usr/bin/env bash
# bench/soak: the long soaks, on the release build, PostgreSQL with its
# default durability (fsync on).
#  1. wrk's mixed read/write load (bench/soak/mixed.lua: job reads, lists,
#     events, artifact downloads, job creation, health) for SOAK_LOAD_SECONDS
#     (600), the server's RSS and open descriptors sampled every 5 s; p50 and
#     p99 beside the same wrk against the minimal libmicrohttpd responder
#     (bench/http/static.c: the ceiling), as a ratio.
#  2. a generated 1 GiB JSONL upload streamed to POST /v1/datasets while the
#     server's RSS is sampled: its peak growth (flat memory: a few MiB).
#  3. the kill -9 job soak (tests/integration/soak.test.mjs) for SOAK_SECONDS
#     (300): jobs survived, kills made.
# SOAK_PARTS=load,upload,jobs picks parts.
set -euo pipefail
cd "$(dirname "$0")/../.."
load_s=${SOAK_LOAD_SECONDS:-600}
jobs_s=${SOAK_SECONDS:-300}
parts=${SOAK_PARTS:-load,upload,jobs}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_HTTP_THREADS:-8}
tmp=$(mktemp -d /tmp/refinery-soak.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true;
            scripts/pg.sh stop "$tmp/pg"; rm -rf "$tmp"; }
trap cleanup EXIT

url=$(scripts/pg.sh start "$tmp/pg")
export REFINERY_DATABASE_URL=$url
build/refinery migrate >/dev/null 2>&1
export BENCH_KEY=$(build/refinery keys create --tenant soak 2>/dev/null)
port=$((30000 + RANDOM % 10000)); port_static=$((port + 1))
REFINERY_LISTEN=127.0.0.1:$port REFINERY_TEST_JOBS=1 REFINERY_ACCESS_LOG=0 REFINERY_WORKERS=4 \
  REFINERY_HTTP_THREADS=$threads REFINERY_DATA_DIR=$tmp/data REFINERY_MAX_DATASET_BYTES=$((2 << 30)) \
  build/refinery serve 2>"$tmp/serve.log" & pid=$!; pids+=($pid)
build/bench/http/static "$port_static" "$threads" 2>/dev/null & pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
api() { curl -sf -H "Authorization: Bearer $BENCH_KEY" "$@"; }
id_of() { sed -n 's/.*"id":"\([a-z]*_[0-9a-z]*\)".*/\1/p' | head -n 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
mib() { echo "scale=1; $1 / 1024" | bc; }

# wrk's percentile in ms from its --latency table.
pct() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'; }

if [[ ",$parts," == *,load,* ]]; then
  export SOAK_JOB=$(api -d '{"type":"test.noop","params":{"echo":"read me"}}' "http://127.0.0.1:$port/v1/jobs" | id_of)
  export SOAK_LIVE=$(api -d '{"type":"test.sleep","params":{"ms":3600000,"steps":3600}}' "http://127.0.0.1:$port/v1/jobs" | id_of)
  a=$(api -d '{"type":"test.artifact","params":{"content":"soak artifact ","repeat":4096}}' "http://127.0.0.1:$port/v1/jobs" | id_of)
  for _ in $(seq 1 100); do api "http://127.0.0.1:$port/v1/jobs/$a" | grep -q '"succeeded"' && break; sleep 0.1; done
  export SOAK_ART=$(api "http://127.0.0.1:$port/v1/jobs/$a/artifacts" | id_of)
  wrk -t2 -c"$conns" -d10s -s bench/soak/mixed.lua "http://127.0.0.1:$port" >/dev/null # warm
  sleep 1
  fd0=$(fds)
  : >"$tmp/samples"
  ( while :; do echo "$(date +%s) $(rss_kib) $(fds)" >>"$tmp/samples"; sleep 5; done ) & sampler=$!; pids+=($sampler)
  wrk -t2 -c"$conns" -d"${load_s}s" --latency -s bench/soak/mixed.lua "http://127.0.0.1:$port" >"$tmp/wrk.out" 2>&1
  kill "$sampler"
  sleep 2
  fd1=$(fds)
  wrk -t2 -c"$conns" -d30s --latency "http://127.0.0.1:$port_static/" >"$tmp/static.out" 2>&1
  reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
  rps=$(awk '/^Requests\/sec/ {print $2}' "$tmp/wrk.out")
  bad=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out"); bad=${bad:-0}
  p50=$(pct 50% <"$tmp/wrk.out"); p99=$(pct 99% <"$tmp/wrk.out")
  s50=$(pct 50% <"$tmp/static.out"); s99=$(pct 99% <"$tmp/static.out")
  n=$(wc -l <"$tmp/samples")
  warm=$(awk -v k=$((n / 10 + 1)) 'NR == k {print $2}' "$tmp/samples")
  end=$(tail -n 1 "$tmp/samples" | awk '{print $2}')
  max=$(awk '$2 > m {m = $2} END {print m}' "$tmp/samples")
  fmax=$(awk '$3 > m {m = $3} END {print m}' "$tmp/samples")
  jobs=$(psql "$url" -qAtX -c "SELECT count(*) FROM jobs")
  printf '\nbench/soak: mixed load  (%s cores, wrk -t2 -c%s, %s s, %s job rows at the end)\n' "$(nproc)" "$conns" "$load_s" "$jobs"
  printf '  requests            %s (%s/s), non-2xx %s\n' "$reqs" "$rps" "$bad"
  printf '  latency             p50 %s ms, p99 %s ms   (static libmicrohttpd: p50 %s ms, p99 %s ms; p99 ratio %.1f)\n' \
    "$p50" "$p99" "$s50" "$s99" "$(echo "$p99 / $s99" | bc -l)"
  printf '  RSS                 %s MiB warm (at %s%%), %s MiB at the end, %s MiB at most: %+.1f MiB over the run\n' \
    "$(mib "$warm")" 10 "$(mib "$end")" "$(mib "$max")" "$(echo "($end - $warm) / 1024" | bc -l)"
  printf '  open descriptors    %s before, %s at most under load, %s after\n' "$fd0" "$fmax" "$fd1"
  api -X POST "http://127.0.0.1:$port/v1/jobs/$SOAK_LIVE/cancel" >/dev/null || true
fi

if [[ ",$parts," == *,upload,* ]]; then
  line=$(printf '{"prompt":"%s","response":"%s"}' "$(head -c 100 /dev/zero | tr '\0' p)" "$(head -c 65000 /dev/zero | tr '\0' r)")
  n=$(( (1 << 30) / (${#line} + 1) + 1 ))
  h0=$(hwm_kib); r0=$(rss_kib)
  ( peak=0; while :; do r=$(rss_kib); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$tmp/upload.peak"; sleep 0.2; done ) & sampler=$!; pids+=($sampler)
  t0=$(date +%s.%N)
  out=$({ yes "$line" || true; } | head -n "$n" | curl -sS -H "Authorization: Bearer $BENCH_KEY" -H 'Content-Type: application/x-ndjson' \
    -X POST -T - "http://127.0.0.1:$port/v1/datasets?name=huge")
  t1=$(date +%s.%N)
  kill "$sampler"
  h1=$(hwm_kib)
  bytes=$(echo "$out" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p')
  printf '\nbench/soak: 1 GiB upload (%s lines, %s bytes stored, %.1f s, %.0f MiB/s)\n' "$n" "${bytes:-FAILED: $out}" \
    "$(echo "$t1 - $t0" | bc -l)" "$(echo "${bytes:-0} / 1048576 / ($t1 - $t0)" | bc -l)"
  printf '  server RSS          %s MiB before, %s MiB at most while streaming: %+.1f MiB (peak RSS %+.1f MiB)\n' \
    "$(mib "$r0")" "$(mib "$(cat "$tmp/upload.peak")")" "$(echo "($(cat "$tmp/upload.peak") - $r0) / 1024" | bc -l)" \
    "$(echo "($h1 - $h0) / 1024" | bc -l)"
fi

if [[ ",$parts," == *,jobs,* ]]; then
  (cd tests/integration && { npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || npm install --no-audit --no-fund --loglevel=error >/dev/null; })
  printf '\nbench/soak: kill -9 job soak (%s s, 3 worker processes, release build)\n' "$jobs_s"
  REFINERY_BIN=$PWD/build/refinery REFINERY_TEST_PG_URL=$url REFINERY_TEST_TMP=$tmp SOAK_SECONDS=$jobs_s \
    SOAK_REPORT=$tmp/soak.json node --test tests/integration/soak.test.mjs >"$tmp/soak.out" 2>&1 || { cat "$tmp/soak.out"; exit 1; }
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`  jobs                ${r.jobs} submitted over ${r.seconds} s: ${r.succeeded} succeeded, ${r.failed} failed as their type says (bad input, crash jobs)`);
    console.log(`  faults              ${r.kills} kill -9, ${r.crashes} crashes of test.crash jobs, ${r.worker_starts} worker starts, ${r.rescued} jobs rescued, ${r.reruns} ran more than one attempt`);
    console.log(`  in effect           every job once; 0 orphan files; at most ${r.max_stuck_running} job running past its lease (${r.samples} samples)`);
  ' "$tmp/soak.json"
fi
