#!/usr/bin/env bash
# What sharing the state costs: the request path (auth, rate limit,
# metering) at 64 connections on
#   - 1 replica on SQLite with the in-process limiter (the single machine),
#   - 1 replica on PostgreSQL + Redis,
#   - 3 replicas on PostgreSQL + Redis (scripts/cluster), the 64 connections
#     split over them,
# printed side by side, from wrk on loopback.
#
#   bench/cluster.sh [seconds-per-run]
#
# Throughput is the sum over the replicas; p99 is the worst replica's.
# All of it shares this machine's cores: with 3 replicas, PostgreSQL,
# Redis and wrk on 2 cores, the figures show the cost per request of the
# shared state, not the scaling more machines would give.
#
# BENCH_JSON=PATH also writes the figures as JSON (bench/all.sh reads them):
# {"bench", "seconds", "cores", "rows": [{"setup", "replicas",
# "shared_state", "rps", "p99_ms", "non_2xx"}]}, shared_state false for
# SQLite with in-process limits, true for PostgreSQL + Redis.
# BENCH_NO_BUILD=1 uses the release binary as it is.
set -euo pipefail
BENCH_JSON=${BENCH_JSON:+$(realpath -m "$BENCH_JSON")}
cd "$(dirname "$0")/.."
root=$PWD
SECS=${1:-10}
. scripts/lib/system-deps.sh
. scripts/lib/services.sh

command -v wrk >/dev/null || ensure_system_packages wrk
ensure_postgres
ensure_redis
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --locked -q -p maximin
BIN=${CARGO_TARGET_DIR:-$root/target}/release/maximin

WORK=$(mktemp -d)
cleanup() {
  MAXIMIN_CLUSTER_DIR="$WORK/cluster" scripts/cluster stop 2>/dev/null || true
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  psql "$MAXIMIN_TEST_POSTGRES_URL" -q -c "DROP DATABASE IF EXISTS maximin_bench WITH (FORCE)" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/get.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
LUA

# setup DATA_DIR [db-url]: an enterprise account without practical limits; prints its key.
setup() {
  local env=()
  [ -n "${2:-}" ] && env=(MAXIMIN_DATABASE_URL="$2")
  local account
  account=$(env "${env[@]}" "$BIN" accounts create --data-dir "$1" --email "bench-$RANDOM@example.com" \
    --plan enterprise --rpm 100000000 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
  env "${env[@]}" "$BIN" keys create --data-dir "$1" --account "$account" --name bench --scope admin --json \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["secret"])'
}

# load NAME PATH URL... : 64 connections split over the URLs, for SECS.
load() {
  local name="$1" path="$2"; shift 2
  local n=$# i=0 pids=()
  for base in "$@"; do
    local c=$(( 64 / n + (i < 64 % n ? 1 : 0) ))
    KEY=$KEY wrk -t 1 -c "$c" -d "${SECS}s" --latency -s "$WORK/get.lua" "$base$path" >"$WORK/wrk-$i" &
    pids+=($!)
    i=$((i + 1))
  done
  wait "${pids[@]}"
  local rps=0 p99=0 bad=0
  for j in $(seq 0 $((n - 1))); do
    bad=$(awk -v b="$bad" '/Non-2xx/ {b += $5} END {print b}' "$WORK/wrk-$j")
    rps=$(awk -v a="$rps" '/^Requests\/sec/ {printf "%.0f", a + $2}' "$WORK/wrk-$j")
    p99=$(awk -v worst="$p99" '$1=="99%" {v=$2; ms=v+0; if (v ~ /us$/) ms=ms/1000; else if (v ~ /[^m]s$/) ms=ms*1000; if (ms > worst) worst=ms; printf "%.2f", worst}' "$WORK/wrk-$j")
  done
  printf '%-44s %9s req/s   p99 %7s ms%s\n' "$name" "$rps" "$p99" "$([ "$bad" != 0 ] && echo "   (non-2xx: $bad)")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$n" "$rps" "$p99" "$bad" >>"$WORK/rows.tsv"
}

echo "maximin request path at 64 connections, $(nproc) cores, ${SECS}s per run (GET /v1/models: auth, rate limit, metering)"

# 1 replica, SQLite, in-process limiter.
mkdir -p "$WORK/single"
KEY=$(setup "$WORK/single")
MAXIMIN_NO_PULL=true MAXIMIN_BOOTSTRAP=off "$BIN" serve --data-dir "$WORK/single" --listen 127.0.0.1:0 \
  >"$WORK/single.out" 2>"$WORK/single.log" &
SERVER=$!
for _ in $(seq 100); do grep -q listening "$WORK/single.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^maximin listening on //p' "$WORK/single.out")
load "1 replica, SQLite + in-process limits" /v1/models "$BASE"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=

# PostgreSQL + Redis, 1 then 3 replicas.
psql "$MAXIMIN_TEST_POSTGRES_URL" -q -c "DROP DATABASE IF EXISTS maximin_bench WITH (FORCE)" 2>/dev/null
psql "$MAXIMIN_TEST_POSTGRES_URL" -q -c "CREATE DATABASE maximin_bench"
export MAXIMIN_DATABASE_URL="${MAXIMIN_TEST_POSTGRES_URL%/*}/maximin_bench"
export MAXIMIN_REDIS_URL="$MAXIMIN_TEST_REDIS_URL"
mkdir -p "$WORK/cli"
KEY=$(setup "$WORK/cli" "$MAXIMIN_DATABASE_URL")
for n in 1 3; do
  MAXIMIN_CLUSTER_DIR="$WORK/cluster" MAXIMIN_CLUSTER_PORT=18081 MAXIMIN_BIN="$BIN" \
    MAXIMIN_NO_PULL=true MAXIMIN_BOOTSTRAP=off scripts/cluster "$n" >/dev/null
  urls=()
  for i in $(seq 1 "$n"); do urls+=("http://127.0.0.1:$((18080 + i))"); done
  load "$n replica(s), PostgreSQL + Redis" /v1/models "${urls[@]}"
  MAXIMIN_CLUSTER_DIR="$WORK/cluster" scripts/cluster stop
done

if [ -n "${BENCH_JSON:-}" ]; then
  python3 - "$WORK/rows.tsv" "$BENCH_JSON" "$SECS" "$(nproc)" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    setup, n, rps, p99, bad = line.rstrip("\n").split("\t")
    rows.append({"setup": setup, "replicas": int(n), "shared_state": "PostgreSQL" in setup,
                 "rps": float(rps) if rps else None, "p99_ms": float(p99) if p99 else None,
                 "non_2xx": int(bad or 0)})
with open(sys.argv[2], "w") as f:
    json.dump({"bench": "cluster", "seconds": float(sys.argv[3]), "cores": int(sys.argv[4]),
               "rows": rows}, f, indent=2)
    f.write("\n")
PY
fi
