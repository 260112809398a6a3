# Sourced by scripts/check and scripts/cluster: makes sure PostgreSQL and
# Redis answer on loopback, installing them from Debian and starting them
# when they do not, and exports the URLs the tests and the cluster use:
#
#   ensure_postgres   -> MAXIMIN_TEST_POSTGRES_URL (a server; tests make their own databases)
#   ensure_redis      -> MAXIMIN_TEST_REDIS_URL
#   ensure_s3         -> MAXIMIN_TEST_S3_ENDPOINT (moto's S3 server from PyPI,
#                        in ~/.cache/maximin-moto, on 127.0.0.1:9323)
#
# Idempotent: services already running (and URLs already set) are left as
# they are.

_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_wait_for() {
  local what="$1"; shift
  for _ in $(seq 1 60); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "error: $what did not start" >&2
  return 1
}

ensure_postgres() {
  if [ -n "${MAXIMIN_TEST_POSTGRES_URL:-}" ]; then return 0; fi
  local url="postgres://postgres@127.0.0.1:5432/postgres"
  if ! { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }; then
    command -v pg_ctlcluster >/dev/null || ensure_system_packages postgresql
    echo "starting PostgreSQL" >&2
    _as_root service postgresql start >/dev/null 2>&1 \
      || _as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    _wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
    # A server we started has Debian's password auth on TCP: give the
    # superuser a password the tests know (local to this machine).
    _as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'maximin-tests'\"" >/dev/null
    url="postgres://postgres:maximin-tests@127.0.0.1:5432/postgres"
  fi
  export MAXIMIN_TEST_POSTGRES_URL="$url"
}

ensure_redis() {
  if [ -n "${MAXIMIN_TEST_REDIS_URL:-}" ]; then return 0; fi
  if ! { command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }; then
    command -v redis-server >/dev/null || ensure_system_packages redis-server
    echo "starting Redis" >&2
    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
    _wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
  fi
  export MAXIMIN_TEST_REDIS_URL="redis://127.0.0.1:6379/"
}

ensure_s3() {
  if [ -n "${MAXIMIN_TEST_S3_ENDPOINT:-}" ]; then return 0; fi
  local port=9323 venv="${MAXIMIN_MOTO_VENV:-$HOME/.cache/maximin-moto}"
  if ! curl -sf -o /dev/null "http://127.0.0.1:$port/"; then
    if ! "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("moto") != "5.2.6")' 2>/dev/null; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.2.6"
    fi
    echo "starting an S3-compatible server (moto) on 127.0.0.1:$port" >&2
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/maximin-moto.log" 2>&1 &
    _wait_for "the S3 server" curl -sf -o /dev/null "http://127.0.0.1:$port/"
  fi
  export MAXIMIN_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
}
