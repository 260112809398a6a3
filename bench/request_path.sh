#!/usr/bin/env bash
# Benchmark of the platform's own request path (auth, scopes, rate limit,
# idempotency, handler, metering) from a second process (wrk) on loopback.
#
#   bench/request_path.sh [seconds-per-run]
#
# Prints requests/s and p50/p99 latency at 1 and 64 concurrent connections for:
#   - GET  /healthz                        (no auth, no storage: HTTP and loopback alone)
#   - GET  /v1/models                      (authenticated read, 4 KB JSON reply)
#   - POST /v1/chat/completions            (1 KB JSON body parsed and validated, model
#                                           resolved for the key; `serve --no-pull` on a data
#                                           dir without weights, so the reply is model_unavailable)
#   - POST /v1/account/keys + Idempotency-Key (replayed: idempotency lookup and decrypt)
#
# BENCH_JSON=PATH also writes the figures as JSON (bench/all.sh reads them):
# {"bench", "seconds", "cores", "rows": [{"name", "path", "connections",
# "rps", "p50_ms", "p99_ms", "non_2xx"}]}. BENCH_NO_BUILD=1 uses the release
# binary as it is.
set -euo pipefail
BENCH_JSON=${BENCH_JSON:+$(realpath -m "$BENCH_JSON")}
cd "$(dirname "$0")/.."
SECS=${1:-10}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -n "${BENCH_NO_BUILD:-}" ] || cargo build --release --locked -q -p maximin
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')/release/maximin"

DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
ACCOUNT=$($BIN accounts create --data-dir "$DATA" --email bench@example.com --plan enterprise --rpm 100000000 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
KEY=$($BIN keys create --data-dir "$DATA" --account "$ACCOUNT" --name bench --scope admin --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["secret"])')

RUST_LOG=${RUST_LOG:-info} $BIN serve --no-pull --data-dir "$DATA" --listen 127.0.0.1:0 >"$DATA/stdout" 2>"$DATA/server.log" &
SERVER=$!
for _ in $(seq 100); do grep -q listening "$DATA/stdout" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^maximin listening on //p' "$DATA/stdout")

CONTENT=$(python3 -c 'print("x" * 900)')
cat >"$DATA/chat.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.body = '{"model":"minimax-chat-v2","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"$CONTENT"}],"temperature":0.7,"max_tokens":64}'
LUA
cat >"$DATA/replay.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["Idempotency-Key"] = "bench-replay"
wrk.body = '{"name":"bench-replayed"}'
LUA
cat >"$DATA/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
LUA

run() { # name path script connections
  local out
  out=$(wrk -t "$(( $4 < 2 ? 1 : 2 ))" -c "$4" -d "${SECS}s" --latency -s "$3" "$BASE$2")
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-34s c=%-3s %10s req/s   p50 %-9s p99 %-9s%s\n' "$1" "$4" "$rps" "$p50" "$p99" "${non2xx:+  (non-2xx: $non2xx)}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$4" "$rps" "$p50" "$p99" "${non2xx:-0}" >>"$DATA/rows.tsv"
}

echo "maximin request path, $(nproc) cores, ${SECS}s per run, wrk on loopback"
: >"$DATA/none.lua"
for c in 1 64; do
  run "GET /healthz (no auth: the floor)" /healthz "$DATA/none.lua" $c
  run "GET /v1/models" /v1/models "$DATA/get.lua" $c
  run "POST /v1/chat/completions (503)" /v1/chat/completions "$DATA/chat.lua" $c
  run "POST /v1/account/keys (replay)" /v1/account/keys "$DATA/replay.lua" $c
done

if [ -n "${BENCH_JSON:-}" ]; then
  python3 - "$DATA/rows.tsv" "$BENCH_JSON" "$SECS" "$(nproc)" <<'PY'
import json, sys
def ms(v):  # wrk's latency: 812.00us, 1.23ms, 1.05s, 1.00m
    for unit, k in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4), ("h", 3.6e6)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * k
    return None
rows = []
for line in open(sys.argv[1]):
    name, path, conns, rps, p50, p99, bad = line.rstrip("\n").split("\t")
    rows.append({"name": name, "path": path, "connections": int(conns),
                 "rps": float(rps) if rps else None, "p50_ms": ms(p50), "p99_ms": ms(p99),
                 "non_2xx": int(bad or 0)})
with open(sys.argv[2], "w") as f:
    json.dump({"bench": "request_path", "seconds": float(sys.argv[3]), "cores": int(sys.argv[4]),
               "rows": rows}, f, indent=2)
    f.write("\n")
PY
fi
