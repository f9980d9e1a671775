#!/usr/bin/env bash
# `make docker-test`: the Docker Compose deployment (docker/compose.yaml), for
# real. Under a project name and host port of its own it builds the images
# (the debian:bookworm base made offline when missing: docker/base-image.sh),
# starts the stack, waits for both services to be healthy, creates a key with
# `compose exec`, registers the tiny test checkpoint from the read-only model
# root, trains a LoRA adapter through the containerised API and downloads it;
# then takes the stack down without -v, starts `serve` before the database (no
# health wait: the start-up retry must carry it) and checks that the key, the
# job and the artifact survived. `down -v` always runs at the end.
#
# No engine answering `docker info`: as root it starts dockerd (stopped after);
# otherwise it fails. REFINERY_DOCKER_TEST_OPTIONAL=1 (scripts/test.sh) exits 77,
# "skipped", instead, when no container engine can run here, and installs
# nothing; without it, missing tools (docker.io, docker-compose, debootstrap,
# jq) are installed with apt-get. REFINERY_DOCKER_TEST_KEEP=1 leaves a failed
# run's stack up for a look (`docker-compose -p NAME -f docker/compose.yaml
# logs`; `down -v` it after).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
optional=${REFINERY_DOCKER_TEST_OPTIONAL:-0}
t0=$(date +%s)
say() { printf 'docker-test: %s\n' "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }
# No container engine can run: loud failure, or a skip when optional.
no_engine() {
  if [ "$optional" = 1 ]; then say "SKIPPED: no container engine can run here: $* (make docker-test installs what it can)"; exit 77; fi
  die "no container engine can run here: $*"
}
elapsed() { echo "$(($(date +%s) - t0)) s"; }

as_root=""
[ "$(id -u)" -eq 0 ] || as_root=sudo
apt_install() { # packages...
  [ "$optional" = 1 ] && return 1
  [ -z "$as_root" ] || command -v sudo >/dev/null || return 1
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive $as_root apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Tools. An existing docker CLI (Docker CE's, say) is kept: docker.io only
# where there is none.
want=()
command -v docker >/dev/null || want+=(docker.io)
command -v jq >/dev/null || want+=(jq)
command -v curl >/dev/null || want+=(curl)
if [ ${#want[@]} -gt 0 ]; then
  apt_install "${want[@]}" || no_engine "missing the package(s) ${want[*]}"
fi
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  command -v docker-compose >/dev/null || apt_install docker-compose || no_engine "no docker compose / docker-compose"
  COMPOSE=(docker-compose)
fi
project=""
compose() { "${COMPOSE[@]}" -p "$project" -f "$repo/docker/compose.yaml" "$@"; }
# The legacy builder on both paths (compose 1.29 has no other), so that the
# tagged build stage and compose's build share one layer cache.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

# One run at a time on this machine: runs share the daemon they may start and
# stop, and its image cache.
lock=/tmp/refinery-docker-test.lock
[ -e "$lock" ] || : >"$lock" || die "cannot create $lock"
exec 9<"$lock"
if ! flock -n 9; then
  say "waiting for another docker-test run to finish"
  flock -w 1800 9 || die "another docker-test run held the lock for 30 minutes"
fi

tmp=$(mktemp -d /tmp/refinery-docker-test.XXXXXX)
chmod 755 "$tmp"
dockerd_pid=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$project" ]; then
    if [ "$rc" -ne 0 ] && [ -n "${REFINERY_DOCKER_TEST_KEEP:-}" ]; then
      say "keeping project $project (REFINERY_DOCKER_TEST_KEEP)"
    else
      compose down -v --remove-orphans >"$tmp/down.log" 2>&1 ||
        { say "down -v failed:"; cat "$tmp/down.log"; }
      # Images a newer build replaced (only ours, by label).
      docker image prune -f --filter label=io.refinery.image >/dev/null 2>&1
    fi
  fi
  if [ -n "$dockerd_pid" ]; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$dockerd_pid" 2>/dev/null && say "dockerd $dockerd_pid did not stop" || say "stopped the dockerd it started"
  fi
  rm -rf "$tmp"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || say "failed after $(elapsed)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The engine: the one that answers, or a dockerd of our own.
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || no_engine "docker info does not answer and starting dockerd needs root"
  command -v dockerd >/dev/null || apt_install docker.io || no_engine "docker info does not answer and there is no dockerd"
  say "no engine answers: starting dockerd"
  # Its own session, so that ^C reaches us (and our cleanup) and not it.
  setsid dockerd >"$tmp/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    tail -n 15 "$tmp/dockerd.log" >&2
    kill -0 "$dockerd_pid" 2>/dev/null || dockerd_pid=""
    no_engine "dockerd did not come up (its log above)"
  fi
fi
say "engine: $(docker version -f 'server {{.Server.Version}}' 2>/dev/null), ${COMPOSE[*]} $("${COMPOSE[@]}" version --short 2>/dev/null)"

# Base image, built images.
if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || apt_install debootstrap || no_engine "no debian:bookworm image and no debootstrap to make one"
  tbase=$(date +%s)
  docker/base-image.sh debian:bookworm || die "could not make the debian:bookworm base image"
  say "base image made in $(($(date +%s) - tbase)) s"
fi

project="refinerytest$$$RANDOM"
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
port=$(free_port) || die "no free port"
export REFINERY_DB_PASSWORD
REFINERY_DB_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export REFINERY_PORT=$port REFINERY_BIND=127.0.0.1 REFINERY_MODELS_DIR=$tmp/models REFINERY_WORKERS=1
show_logs() { compose logs --no-color --tail=60 >&2 || true; }

# The model root the containers see read-only: the tiny test checkpoint with
# the byte-level test tokenizer, as the integration suites assemble it.
mkdir -p "$tmp/models/tiny"
cp -r tests/reference/fixtures/llama_f32_gqa/. "$tmp/models/tiny/"
cp -r tests/reference/tokenizers/bytelevel/. "$tmp/models/tiny/"
chmod -R a+rX "$tmp/models"

tb=$(date +%s)
say "building images (logs on failure)"
# refinery's two stages (the build stage tagged, to be measured and kept from
# pruning) beside the database image: downloads overlap.
{ docker build --target build -t refinery-build:latest -f docker/Dockerfile . &&
  compose build serve; } >"$tmp/build.log" 2>&1 &
build_pid=$!
compose build db >"$tmp/build-db.log" 2>&1 || { tail -n 40 "$tmp/build-db.log" >&2; die "compose build db failed"; }
wait "$build_pid" || { tail -n 40 "$tmp/build.log" >&2; die "building the refinery image failed"; }
size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }
say "images built in $(($(date +%s) - tb)) s: refinery-build $(size refinery-build:latest), refinery $(size refinery:latest), refinery-postgres $(size refinery-postgres:15)"
# Nothing secret in an image: the password of this run is in no layer.
for img in refinery:latest refinery-postgres:15; do
  { docker history --no-trunc "$img" && docker image inspect "$img"; } >"$tmp/image.txt"
  ! grep -qF "$REFINERY_DB_PASSWORD" "$tmp/image.txt" || die "$img carries the database password"
done

# Waits until each named service's container reports healthy.
wait_healthy() {
  local deadline=$(($(date +%s) + ${HEALTH_TIMEOUT_S:-240})) svc id st
  for svc in "$@"; do
    while :; do
      id=$(compose ps -q "$svc" 2>/dev/null | head -n 1)
      st=missing
      [ -n "$id" ] && st=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null)
      case "$st" in
        running/healthy) break ;;
        */unhealthy|exited/*|dead/*) show_logs; die "$svc is $st" ;;
      esac
      [ "$(date +%s)" -lt "$deadline" ] || { show_logs; die "$svc not healthy in time (last: $st)"; }
      sleep 1
    done
  done
}

tu=$(date +%s)
say "up: project $project on 127.0.0.1:$port"
compose up -d >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log" >&2; show_logs; die "compose up failed"; }
wait_healthy db serve
say "db and serve healthy in $(($(date +%s) - tu)) s"
[ -z "$(compose ps -q worker 2>/dev/null)" ] || die "the gpu-profile worker started without --profile gpu"

base=http://127.0.0.1:$port
key=$(compose exec -T serve refinery keys create --tenant docker-test 2>"$tmp/key.err") ||
  { cat "$tmp/key.err" >&2; die "keys create through compose exec failed"; }
key=$(printf '%s' "$key" | tr -d '\r\n')
[[ "$key" == rfk_* ]] || die "keys create printed '$key'"

# HTTP helpers: req METHOD PATH [curl args] prints the status, the body goes
# to $tmp/body; call WANT METHOD PATH [curl args] prints the body or fails.
req() {
  local m=$1 p=$2
  shift 2
  curl -sS -o "$tmp/body" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $key" "$@" "$base$p"
}
call() {
  local want=$1 got
  shift
  got=$(req "$@") || die "$1 $2: no answer"
  [ "$got" = "$want" ] || die "$1 $2: HTTP $got, expected $want: $(head -c 600 "$tmp/body")"
  cat "$tmp/body"
}

# The container's user and mounts.
[ "$(compose exec -T serve id -u | tr -d '\r')" = 10001 ] || die "serve does not run as the refinery user"
! compose exec -T serve sh -c 'touch /models/tiny/x' 2>/dev/null || die "/models is writable inside the container"

model=$(call 201 POST /v1/models -H 'content-type: application/json' -d '{"name":"tiny","path":"/models/tiny"}' | jq -r .id)
rows=""
for i in $(seq 0 11); do rows+="{\"prompt\":\"add $i and 1\",\"response\":\"$((i + 1))\"}"$'\n'; done
rows+='{"prompt":"add 1 and 2","response":"3","split":"validation"}'$'\n'
ds=$(call 201 POST '/v1/datasets?name=sums' -H 'content-type: application/x-ndjson' --data-binary "$rows" | jq -r .id)
params='{"student":"tiny","dataset":"'"$ds"'","lora":{"r":4,"alpha":8},"optimizer":{"name":"muon","lr":0.02},
         "batch":2,"seq_len":32,"max_steps":3,"export":["adapter"],"seed":1}'
job=$(call 201 POST /v1/jobs -H 'content-type: application/json' -d "{\"type\":\"train\",\"params\":$params}" | jq -r .id)
say "train job $job (model $model, dataset $ds)"
tj=$(date +%s)
status=""
for _ in $(seq 1 600); do
  status=$(call 200 GET "/v1/jobs/$job" | jq -r .status)
  case "$status" in succeeded | failed | cancelled) break ;; esac
  sleep 0.5
done
[ "$status" = succeeded ] || { show_logs; die "train job ended '$status': $(cat "$tmp/body")"; }
[ "$(jq -r .result.steps "$tmp/body")" = 3 ] || die "train job result: $(cat "$tmp/body")"
say "train job succeeded in $(($(date +%s) - tj)) s"

call 200 GET "/v1/jobs/$job/artifacts" >"$tmp/artifacts.json"
art=$(jq -r '.data[] | select(.name == "adapter_model.safetensors") | .id' "$tmp/artifacts.json")
sha=$(jq -r '.data[] | select(.name == "adapter_model.safetensors") | .sha256' "$tmp/artifacts.json")
cfg=$(jq -r '.data[] | select(.name == "adapter_config.json") | .id' "$tmp/artifacts.json")
[ -n "$art" ] && [ -n "$cfg" ] || die "the job's artifacts: $(cat "$tmp/artifacts.json")"
call 200 GET "/v1/artifacts/$art/content" >/dev/null
cp "$tmp/body" "$tmp/adapter.safetensors"
[ "$(sha256sum <"$tmp/adapter.safetensors" | cut -d' ' -f1)" = "$sha" ] || die "downloaded adapter does not match its sha256"
[ "$(call 200 GET "/v1/artifacts/$cfg/content" | jq -r '.peft_type + " r=" + (.r | tostring)')" = "LORA r=4" ] ||
  die "adapter_config.json: $(cat "$tmp/body")"
say "downloaded the adapter ($(stat -c %s "$tmp/adapter.safetensors") bytes, sha256 matches)"

# Restart without -v. serve first and alone: no health wait, the database is
# not there yet, so only REFINERY_DB_WAIT_S brings it up.
say "down (volumes kept); serve started before the database"
compose down >"$tmp/down1.log" 2>&1 || { cat "$tmp/down1.log" >&2; die "compose down failed"; }
compose up -d --no-deps serve >"$tmp/up2.log" 2>&1 || { cat "$tmp/up2.log" >&2; die "compose up serve failed"; }
# (logs to a file first: grep -q quitting early would fail the pipe)
serve_log() { compose logs --no-color serve >"$tmp/serve.log" 2>&1 || true; grep -q "$1" "$tmp/serve.log"; }
for _ in $(seq 1 60); do
  serve_log "retrying in" && break
  sleep 0.5
done
serve_log "retrying in" || { show_logs; die "serve did not wait for the database"; }
compose up -d db >"$tmp/up3.log" 2>&1 || { cat "$tmp/up3.log" >&2; die "compose up db failed"; }
wait_healthy db serve
serve_log "database reached at attempt" || { show_logs; die "serve came up without the retry"; }

# What survived: the key (it authenticates), the job and its result, the
# artifact's bytes, the registered model.
[ "$(call 200 GET "/v1/jobs/$job" | jq -r '.status + " " + (.result.steps | tostring)')" = "succeeded 3" ] ||
  die "the job after the restart: $(cat "$tmp/body")"
call 200 GET "/v1/artifacts/$art/content" >/dev/null
[ "$(sha256sum <"$tmp/body" | cut -d' ' -f1)" = "$sha" ] || die "the artifact's bytes changed across the restart"
[ "$(call 200 GET "/v1/models/$model" | jq -r .name)" = tiny ] || die "the model after the restart: $(cat "$tmp/body")"
say "after the restart: key, job $job, artifact $art and model $model are all there"

# The GPU worker's definition: valid and reserving an NVIDIA GPU (starting it
# needs a GPU host; nothing here can run it).
compose --profile gpu config >"$tmp/gpu.yaml" 2>&1 || { cat "$tmp/gpu.yaml" >&2; die "compose --profile gpu config failed"; }
grep -q "driver: nvidia" "$tmp/gpu.yaml" || die "the worker service reserves no NVIDIA GPU"

say "passed in $(elapsed)"
