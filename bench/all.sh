#!/usr/bin/env bash
# Every benchmark in turn, then one markdown table of maximin against each
# peer, with the date, the machine and maximin's commit.
#
#   bench/all.sh [--quick] [--only NAME,...] [--skip NAME,...] [--out FILE]
#                [--run-dir DIR] [--no-build] [--dry-run]
#
# NAMEs, in the order they run:
#   request_path  bench/request_path.sh   /v1/models against the chat POST and /healthz
#   gateway       bench/gateway.sh        maximin against LiteLLM and a bare forwarder
#   cluster       bench/cluster.sh        PostgreSQL + Redis replicas against SQLite
#   chat          bench/local_models.py   against llama-server and llama-cpp-python
#   embeddings    bench/local_models.py   against sentence-transformers
#   speech        bench/speech.py         against piper-tts
#   media         bench/media.py          against sd.cpp, ffmpeg, FluidSynth (5 GB of weights)
#   fine_tune     bench/fine_tune.py      against PEFT on PyTorch
#   cold_start    bench/cold_start.py     exec to /readyz 200 against the 200 ms target
#
# Each one writes its figures as JSON (NAME.json) and its output (NAME.log)
# into the run directory (--run-dir, default bench/runs/<UTC time>); a
# benchmark that fails is recorded as failed and the next one runs. Then
# bench/report.py RUN_DIR writes the table to --out (default
# bench/results.md) and prints it; it rebuilds the table from a run
# directory at any time without running anything again. A benchmark left out
# (--only, --skip) or failed is a row saying so, with its log.
#
#   --quick     short runs: 2 s per wrk run, one round, cold start 2 runs,
#               media without video, fine-tuning rank 8 on 16 examples
#   --no-build  use the release binaries as they are (no cargo build before
#               the shell benches, speech, media, fine_tune and cold_start;
#               local_models.py builds anyway, as a no-op when up to date)
#   --dry-run   print each benchmark's command; run nothing, write no table
#
# BENCH_CHAT_ARGS adds arguments to the chat run (bench/local_models.py), e.g.
# --skip-llama-cpp-python when that peer's ten-minute build is not wanted.
#
# The peers are installed on first use as each benchmark says (PyPI, Debian,
# ~/.cache); CARGO_TARGET_DIR is honoured. Not a test: never run it in CI.
set -uo pipefail

ALL=(request_path gateway cluster chat embeddings speech media fine_tune cold_start)
usage() { sed -n '2,/^set /{/^#/{s/^# \{0,1\}//;p}}' "$0"; }
die() { echo "all.sh: $*" >&2; exit 2; }

QUICK= ONLY= SKIP= OUT=bench/results.md RUN= NO_BUILD= DRY=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) NO_BUILD=1 ;;
    --dry-run) DRY=1 ;;
    --only | --skip | --out | --run-dir)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --only) ONLY=$2 ;; --skip) SKIP=$2 ;; --out) OUT=$2 ;; --run-dir) RUN=$2 ;;
      esac
      shift ;;
    --only=*) ONLY=${1#*=} ;;
    --skip=*) SKIP=${1#*=} ;;
    --out=*) OUT=${1#*=} ;;
    --run-dir=*) RUN=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done
# What the header says it ran with (--out and --run-dir change no figure).
ARGS="${QUICK:+--quick }${ONLY:+--only $ONLY }${SKIP:+--skip $SKIP }${NO_BUILD:+--no-build}"
ARGS=${ARGS% }
for name in ${ONLY//,/ } ${SKIP//,/ }; do
  [[ " ${ALL[*]} " == *" $name "* ]] || die "no benchmark named '$name' (names: ${ALL[*]})"
done
# Paths as the caller gave them, before moving to the repository's root.
OUT=$(realpath -m "$OUT")
[ -n "$RUN" ] && RUN=$(realpath -m "$RUN")
cd "$(dirname "$0")/.." || exit 1
RUN=${RUN:-$PWD/bench/runs/$(date -u +%Y%m%dT%H%M%SZ)}
if [ -n "$DRY" ]; then RUN=$(mktemp -d); trap 'rm -rf "$RUN"' EXIT; fi
mkdir -p "$RUN" || exit 1
: >"$RUN/status.tsv"
python3 bench/report.py --init "$RUN" --args="$ARGS" || exit 1
trap 'echo "all.sh: interrupted; the run so far is in $RUN" >&2; exit 130' INT TERM

SECS=10
[ -n "$QUICK" ] && SECS=2
[ -n "$NO_BUILD" ] && export BENCH_NO_BUILD=1
NB=()
[ -n "$NO_BUILD" ] && NB=(--no-build)

# The command of one benchmark, into CMD.
command_of() {
  local json="$RUN/$1.json"
  case "$1" in
    request_path | gateway | cluster)
      CMD=(env BENCH_JSON="$json" "bench/$1.sh" "$SECS") ;;
    chat)
      CMD=(python3 bench/local_models.py --skip-embeddings --json "$json")
      if [ -n "$QUICK" ]; then CMD+=(--rounds 1); else CMD+=(--rounds 2); fi
      # e.g. BENCH_CHAT_ARGS=--skip-llama-cpp-python
      # shellcheck disable=SC2206
      CMD+=(${BENCH_CHAT_ARGS:-}) ;;
    embeddings)
      CMD=(python3 bench/local_models.py --skip-chat --json "$json")
      [ -n "$QUICK" ] && CMD+=(--rounds 1) ;;
    speech)
      CMD=(python3 bench/speech.py --json "$json" "${NB[@]}")
      [ -n "$QUICK" ] && CMD+=(--rounds 1) ;;
    media)
      CMD=(python3 bench/media.py --json "$json" "${NB[@]}")
      [ -n "$QUICK" ] && CMD+=(--rounds 1 --skip-video) ;;
    fine_tune)
      # fine_tune.py never builds; the binary is the release one of this target dir.
      local target
      target=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])') || return 1
      CMD=(python3 bench/fine_tune.py --bin "$target/release/maximin" --json "$json")
      [ -n "$QUICK" ] && CMD+=(--ranks 8 --examples 16)
      [ -n "$NO_BUILD" ] ||
        CMD=(bash -c 'cargo build --release --locked -q -p maximin && exec "$@"' build "${CMD[@]}") ;;
    cold_start)
      CMD=(python3 bench/cold_start.py --json "$json" "${NB[@]}")
      [ -n "$QUICK" ] && CMD+=(--runs 2) ;;
  esac
  return 0
}

record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RUN/status.tsv"; }
in_list() { [[ ",$2," == *",$1,"* ]]; }

echo "all.sh: run directory $RUN" >&2
for name in "${ALL[@]}"; do
  log="$RUN/$name.log"
  if [ -n "$ONLY" ] && ! in_list "$name" "$ONLY"; then
    record "$name" skipped "not in --only" 0
    echo "== $name: skipped (not in --only)" >&2
    continue
  fi
  if [ -n "$SKIP" ] && in_list "$name" "$SKIP"; then
    record "$name" skipped "--skip" 0
    echo "== $name: skipped (--skip)" >&2
    continue
  fi
  if ! command_of "$name" >"$log" 2>&1; then
    record "$name" failed "could not prepare its command" 0
    echo "== $name: FAILED to prepare (see $log)" >&2
    continue
  fi
  echo "== $name: ${CMD[*]}" >&2
  [ -n "$DRY" ] && continue
  echo "\$ ${CMD[*]}" >>"$log"
  rm -f "$RUN/$name.json"
  start=$SECONDS
  "${CMD[@]}" >>"$log" 2>&1 </dev/null
  rc=$?
  took=$((SECONDS - start))
  if [ "$rc" -eq 0 ] && [ -s "$RUN/$name.json" ]; then
    record "$name" ok "" "$took"
    echo "== $name: ok in ${took}s" >&2
  else
    if [ "$rc" -eq 0 ]; then why="exited 0 without writing $name.json"; else why="exit $rc"; fi
    record "$name" failed "$why" "$took"
    echo "== $name: FAILED ($why) in ${took}s; the end of $log:" >&2
    tail -n 5 "$log" | sed 's/^/   /' >&2
  fi
done

[ -n "$DRY" ] && exit 0
python3 bench/report.py "$RUN" --out "$OUT" || exit 1
echo "all.sh: wrote $OUT (bench/report.py $RUN rebuilds it)" >&2
