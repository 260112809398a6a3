#!/usr/bin/env bash
# Benchmark of maximin as an LLM gateway (issue 14), in one run on this machine:
#
#   nginx    a static mock of an OpenAI-compatible server, alone
#   floor    the least a gateway on maximin's stack costs: a bare axum +
#            reqwest forwarder (crates/maximin-upstream/examples/floor_proxy.rs;
#            no auth, limits, parsing, routing or metering) in front of the mock
#   maximin  in front of that mock, on /openai/v1/chat/completions with a bearer
#            key: auth, rate limits (an enterprise account with a huge rpm, so
#            every request is counted and none refused), routing and metering on
#   litellm  LiteLLM proxy (pinned below, from PyPI) in front of the same mock
#
# each at 1 connection (1 wrk thread) and 64 connections (2 wrk threads),
# non-streamed and streamed (SSE), driven by wrk on loopback:
#
#   bench/gateway.sh [seconds-per-run]      (default 10)
#
# Prints one table (req/s, p50, p99, non-2xx per target and scenario), then
# maximin's p50 minus nginx's at 1 connection and the maximin/LiteLLM ratios.
# The four run in turn within each scenario, so contention on a shared
# machine falls on all of them alike.
#
# maximin is built with `--no-default-features`: the gateway path needs no
# local engine (no llama.cpp, candle, espeak-ng or ONNX Runtime), and that
# build is much faster. CARGO_TARGET_DIR is honoured.
#
# LiteLLM goes into a venv under ~/.cache/maximin-bench-litellm, made only
# when missing (or holding another version). It runs as its docs recommend
# for speed: one uvicorn worker, no database (so: a master key only, no
# virtual keys, budgets or spend logs, which favours it), logging at ERROR,
# the bundled model cost map.
#
# BENCH_JSON=PATH also writes the table as JSON (bench/all.sh reads it):
# {"bench", "seconds", "cores", "versions", "rows": [{"target", "connections",
# "mode", "rps", "p50_ms", "p99_ms", "non_2xx", "socket_errors"}]}, target
# one of nginx, floor, maximin, litellm and mode plain or stream.
# BENCH_NO_BUILD=1 uses the release binaries as they are (maximin as built,
# default features or not; the floor_proxy example must exist).
#
# Not a test: never run it in CI.
set -euo pipefail
BENCH_JSON=${BENCH_JSON:+$(realpath -m "$BENCH_JSON")}
cd "$(dirname "$0")/.."
SECS=${1:-10}
LITELLM_VERSION=1.106.12 # newer 1.108–1.110 pin litellm-proxy* packages PyPI does not serve
VENV=${MAXIMIN_BENCH_LITELLM_VENV:-$HOME/.cache/maximin-bench-litellm}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${@:2}" >/dev/null; }; }
need wrk wrk
need nginx nginx-light || need nginx nginx

if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release --locked -q -p maximin --no-default-features
  cargo build --release --locked -q -p maximin-upstream --example floor_proxy
fi
BIN=${CARGO_TARGET_DIR:-target}/release/maximin
FLOOR_BIN=${CARGO_TARGET_DIR:-target}/release/examples/floor_proxy
for b in "$BIN" "$FLOOR_BIN"; do
  [ -x "$b" ] || { echo "gateway.sh: $b is missing: build it (run without BENCH_NO_BUILD)" >&2; exit 1; }
done

if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" != "$LITELLM_VERSION" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
fi

DATA=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url what [curl args...]: until it answers 2xx, at most 120 s
  for _ in $(seq 600); do curl -sf -o /dev/null "${@:3}" "$1" && return 0; sleep 0.2; done
  echo "$2 did not come up; its log:" >&2
  return 1
}

# --- the mock: nginx in the foreground with its own config ------------------
# `return 200 '…'` answers any method, POST included, from the rewrite phase
# (a static file would need `error_page 405 =200 $uri;`), and nginx reads
# and discards the request body, so keep-alive holds. `/v1/…` is the JSON
# answer, `/stream/v1/…` the SSE one: the gateways get two upstreams (base
# URLs) instead of branching on the body.
NGINX_PORT=$(free_port)
CHUNK='{"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}'
# shellcheck disable=SC2059
SSE="data: $(printf "$CHUNK" '{"role":"assistant","content":""}' null)\n\n"
SSE+="data: $(printf "$CHUNK" '{"content":"Hello"}' null)\n\n"
SSE+="data: $(printf "$CHUNK" '{"content":" from the"}' null)\n\n"
SSE+="data: $(printf "$CHUNK" '{"content":" mock."}' null)\n\n"
SSE+="data: $(printf "$CHUNK" '{}' '"stop"')\n\n"
SSE+='data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}\n\n'
SSE+='data: [DONE]\n\n'
JSON='{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}'
cat >"$DATA/nginx.conf" <<NGINX
# One worker: the mock should take as little of the machine as it can.
worker_processes 1;
pid $DATA/nginx.pid;
error_log $DATA/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # The default (1000) would close every gateway's pooled connections often.
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /v1/chat/completions {
      default_type application/json;
      return 200 '$JSON';
    }
    location = /stream/v1/chat/completions {
      # nginx turns \n in a quoted string into a newline.
      default_type text/event-stream;
      return 200 '$SSE';
    }
  }
}
NGINX
nginx -e "$DATA/nginx.log" -c "$DATA/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
NGINX=http://127.0.0.1:$NGINX_PORT
wait_http "$NGINX/v1/chat/completions" nginx -X POST -d '{}' || { cat "$DATA/nginx.log" >&2; exit 1; }

# --- the floor: one forwarder per mock URL ------------------------------------
declare -A FLOOR
for mode in plain stream; do
  path=/v1/chat/completions
  [ $mode = stream ] && path=/stream/v1/chat/completions
  "$FLOOR_BIN" "$NGINX$path" >"$DATA/floor-$mode.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$DATA/floor-$mode.out" 2>/dev/null && break; sleep 0.1; done
  FLOOR[$mode]=http://$(sed -n 's/^floor_proxy listening on //p' "$DATA/floor-$mode.out")/chat/completions
done

# --- maximin ------------------------------------------------------------------
mkdir "$DATA/maximin"
cat >"$DATA/maximin/maximin.toml" <<TOML
[upstreams.mock]
kind = "openai"
base_url = "$NGINX/v1"
timeout_s = 30
# max_concurrency left out: no limit on requests in flight to the mock.

[upstreams.mock-stream]
kind = "openai"
base_url = "$NGINX/stream/v1"
timeout_s = 30

[[models]]
id = "mock-chat"
modality = "text"
context_window = 8192
capabilities = ["chat"]
price_input = 0.1
price_output = 0.2
engine = "upstream:mock"

[[models]]
id = "mock-stream"
modality = "text"
context_window = 8192
capabilities = ["chat"]
price_input = 0.1
price_output = 0.2
engine = "upstream:mock-stream"
TOML
MX=(--data-dir "$DATA/maximin/data" --config "$DATA/maximin/maximin.toml")
ACCOUNT=$($BIN accounts create "${MX[@]}" --email bench@example.com --plan enterprise --rpm 100000000 --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')
MX_KEY=$($BIN keys create "${MX[@]}" --account "$ACCOUNT" --name bench --scope text --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["secret"])')
# Logging at warn: no access-log line per request, as nginx runs with
# access_log off and LiteLLM at ERROR (RUST_LOG=info measures it with one;
# the line costs about a tenth of the throughput here).
MAXIMIN_BOOTSTRAP=off RUST_LOG=${RUST_LOG:-warn} $BIN serve "${MX[@]}" --no-pull --listen 127.0.0.1:0 \
  >"$DATA/maximin/stdout" 2>"$DATA/maximin/server.log" &
PIDS+=($!)
for _ in $(seq 300); do grep -q listening "$DATA/maximin/stdout" 2>/dev/null && break; sleep 0.1; done
MAXIMIN=$(sed -n 's/^maximin listening on //p' "$DATA/maximin/stdout")
[ -n "$MAXIMIN" ] || { echo "maximin did not start:" >&2; cat "$DATA/maximin/server.log" >&2; exit 1; }

# --- LiteLLM ------------------------------------------------------------------
LITELLM_PORT=$(free_port)
LL_KEY=sk-bench-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
cat >"$DATA/litellm.yaml" <<YAML
model_list:
  - model_name: mock-chat
    litellm_params: {model: openai/mock-chat, api_base: "$NGINX/v1", api_key: sk-mock}
  - model_name: mock-stream
    litellm_params: {model: openai/mock-stream, api_base: "$NGINX/stream/v1", api_key: sk-mock}
litellm_settings:
  set_verbose: false
  request_timeout: 30
general_settings:
  master_key: $LL_KEY
  disable_spend_logs: true
  disable_error_logs: true
YAML
(cd "$DATA" && LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION LITELLM_LOCAL_MODEL_COST_MAP=True \
  exec "$VENV/bin/litellm" --config "$DATA/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
  --num_workers 1 >"$DATA/litellm.log" 2>&1) &
PIDS+=($!)
LITELLM=http://127.0.0.1:$LITELLM_PORT
wait_http "$LITELLM/health/liveliness" LiteLLM || { tail -50 "$DATA/litellm.log" >&2; exit 1; }

# --- requests -----------------------------------------------------------------
declare -A URL=([nginx]="$NGINX/v1/chat/completions" [floor]="${FLOOR[plain]}" [maximin]="$MAXIMIN/openai/v1/chat/completions" [litellm]="$LITELLM/chat/completions")
declare -A STREAM_URL=([nginx]="$NGINX/stream/v1/chat/completions" [floor]="${FLOOR[stream]}" [maximin]="${URL[maximin]}" [litellm]="${URL[litellm]}")
declare -A KEY=([nginx]="" [floor]="" [maximin]="$MX_KEY" [litellm]="$LL_KEY")
BODY_PLAIN='{"model":"mock-chat","messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
BODY_STREAM='{"model":"mock-stream","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true}'
TARGETS=(nginx floor maximin litellm)
for t in "${TARGETS[@]}"; do
  for mode in plain stream; do
    body=BODY_${mode^^}
    {
      echo 'wrk.method = "POST"'
      echo 'wrk.headers["Content-Type"] = "application/json"'
      [ -n "${KEY[$t]}" ] && echo "wrk.headers[\"Authorization\"] = \"Bearer ${KEY[$t]}\""
      echo "wrk.body = '${!body}'"
    } >"$DATA/$t-$mode.lua"
  done
done
url_of() { if [ "$2" = stream ]; then echo "${STREAM_URL[$1]}"; else echo "${URL[$1]}"; fi; }

# Each target answers as it should before anything is timed.
for t in "${TARGETS[@]}"; do
  for mode in plain stream; do
    body=BODY_${mode^^}
    auth=()
    [ -n "${KEY[$t]}" ] && auth=(-H "Authorization: Bearer ${KEY[$t]}")
    out=$(curl -sS -f "${auth[@]}" -H 'Content-Type: application/json' -d "${!body}" "$(url_of "$t" "$mode")") ||
      { echo "$t ($mode) failed" >&2; exit 1; }
    if [ "$mode" = plain ]; then
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["choices"][0]["message"]["content"]=="Hello from the mock.", d' "$out"
    else
      python3 -c '
import json,sys
events=[l[6:] for l in sys.argv[1].splitlines() if l.startswith("data: ")]
assert events[-1]=="[DONE]", events
text="".join((c.get("delta") or {}).get("content") or "" for e in events[:-1] for c in json.loads(e).get("choices",[]))
assert text=="Hello from the mock.", text' "$out"
    fi
  done
done

to_ms() { awk -v v="$1" 'BEGIN {
  if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) }
  else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
  else { v = -1 }
  printf "%.3f", v }'; }
declare -A RPS P50 P99 NON2XX ERRS
run() { # target mode connections seconds
  local out
  out=$(wrk -t "$(($3 < 2 ? 1 : 2))" -c "$3" -d "${4}s" --timeout 10s --latency -s "$DATA/$1-$2.lua" "$(url_of "$1" "$2")")
  local k="$1|$3|$2"
  RPS[$k]=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  P50[$k]=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  P99[$k]=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  NON2XX[$k]=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  NON2XX[$k]=${NON2XX[$k]:-0}
  ERRS[$k]=$(awk '/Socket errors/ {gsub(",", ""); print $4+$6+$8+$10}' <<<"$out")
  ERRS[$k]=${ERRS[$k]:-0}
}

# Warm-up (connection pools, LiteLLM's first requests), not reported.
for t in "${TARGETS[@]}"; do for mode in plain stream; do run "$t" "$mode" 64 2; done; done

SCENARIOS=("1 plain" "1 stream" "64 plain" "64 stream")
for s in "${SCENARIOS[@]}"; do
  read -r c mode <<<"$s"
  for t in "${TARGETS[@]}"; do run "$t" "$mode" "$c" "$SECS"; done
done

# --- the table ----------------------------------------------------------------
echo
VERSIONS=("$($BIN --version 2>/dev/null || echo maximin) ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))" "$(nginx -v 2>&1 | sed 's/^nginx version: //')" "$( (wrk -v 2>&1 || true) | head -1 | cut -d' ' -f1-2)" "litellm $LITELLM_VERSION")
echo "maximin as a gateway: $(nproc) cores, ${SECS}s per run, wrk on loopback, $(date -u +%Y-%m-%d)"
echo "  ${VERSIONS[0]}, ${VERSIONS[1]}, ${VERSIONS[2]}, ${VERSIONS[3]}"
echo
printf '| %-8s | %-18s | %8s | %8s | %8s | %7s |\n' target scenario 'req/s' 'p50 ms' 'p99 ms' 'non-2xx'
printf '|%s|%s|%s|%s|%s|%s|\n' ---------- -------------------- ---------: ---------: ---------: --------:
for s in "${SCENARIOS[@]}"; do
  read -r c mode <<<"$s"
  for t in "${TARGETS[@]}"; do
    k="$t|$c|$mode"
    bad=${NON2XX[$k]}
    [ "${ERRS[$k]}" != 0 ] && bad+=" (+${ERRS[$k]} socket errors)"
    printf '| %-8s | %-18s | %8s | %8s | %8s | %7s |\n' "$t" "$c conn, $mode" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "$bad"
  done
done
echo
verdict() { if [ "$1" = 1 ]; then echo holds; else echo MISSED; fi; }
for mode in plain stream; do
  d=$(awk -v a="${P50[maximin|1|$mode]}" -v b="${P50[nginx|1|$mode]}" 'BEGIN {printf "%.3f", a - b}')
  ok=$(awk -v d="$d" 'BEGIN {print (d <= 0.2) ? 1 : 0}')
  echo "maximin p50 - nginx p50, 1 conn, $mode: $d ms (target <= 0.2 ms: $(verdict "$ok"))"
done
for mode in plain stream; do
  k="floor|64|$mode"
  echo "floor (bare forwarder) 64 conn, $mode: ${RPS[$k]} req/s, p99 ${P99[$k]} ms: what the stack and machine allow without maximin's work"
done
for mode in plain stream; do
  k="maximin|64|$mode"
  ok=$(awk -v r="${RPS[$k]}" -v p="${P99[$k]}" -v n="${NON2XX[$k]}" -v e="${ERRS[$k]}" 'BEGIN {print (r >= 10000 && p < 5 && n == 0 && e == 0) ? 1 : 0}')
  echo "maximin 64 conn, $mode: ${RPS[$k]} req/s, p99 ${P99[$k]} ms, ${NON2XX[$k]} non-2xx (target >= 10000 req/s, p99 < 5 ms, 0 non-2xx: $(verdict "$ok"))"
done
for s in "${SCENARIOS[@]}"; do
  read -r c mode <<<"$s"
  awk -v c="$c" -v m="$mode" -v r1="${RPS[maximin|$c|$mode]}" -v r2="${RPS[litellm|$c|$mode]}" \
    -v p1="${P50[maximin|$c|$mode]}" -v p2="${P50[litellm|$c|$mode]}" \
    'BEGIN {printf "maximin / LiteLLM, %s conn, %s: %.0fx the req/s; p50 %.3f vs %.3f ms (%.0fx lower)\n", c, m, (r2 > 0 ? r1 / r2 : 0), p1, p2, (p1 > 0 ? p2 / p1 : 0)}'
done

if [ -n "${BENCH_JSON:-}" ]; then
  for s in "${SCENARIOS[@]}"; do
    read -r c mode <<<"$s"
    for t in "${TARGETS[@]}"; do
      k="$t|$c|$mode"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$c" "$mode" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${NON2XX[$k]}" "${ERRS[$k]}"
    done
  done >"$DATA/rows.tsv"
  python3 - "$DATA/rows.tsv" "$BENCH_JSON" "$SECS" "$(nproc)" "${VERSIONS[@]}" <<'PY'
import json, sys
num = lambda v, f: f(v) if v not in ("", "-1", "-1.000") else None  # to_ms prints -1.000 for what it cannot read
rows = []
for line in open(sys.argv[1]):
    t, c, mode, rps, p50, p99, bad, errs = line.rstrip("\n").split("\t")
    rows.append({"target": t, "connections": int(c), "mode": mode, "rps": num(rps, float),
                 "p50_ms": num(p50, float), "p99_ms": num(p99, float),
                 "non_2xx": int(bad or 0), "socket_errors": int(errs or 0)})
maximin, nginx, wrk, litellm = sys.argv[5:9]
with open(sys.argv[2], "w") as f:
    json.dump({"bench": "gateway", "seconds": float(sys.argv[3]), "cores": int(sys.argv[4]),
               "versions": {"maximin": maximin, "nginx": nginx, "wrk": wrk, "litellm": litellm},
               "rows": rows}, f, indent=2)
    f.write("\n")
PY
fi
