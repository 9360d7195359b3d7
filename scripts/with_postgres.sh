#!/usr/bin/env bash
# Run a command beside a throwaway PostgreSQL cluster:
#
#   scripts/with_postgres.sh python -m pytest
#
# initdb in a temporary folder, a server on a free localhost port (its socket in that folder
# too, so it never meets a system cluster), one database, and SAFETY_MODELS_TEST_PG_URL
# exported for the command; the server is stopped and the folder removed however the command
# ends. Needs Debian's `postgresql` package (apt-get install -y postgresql). Run as root, the
# server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "with_postgres.sh: no PostgreSQL server found; apt-get install -y postgresql" >&2
  exit 1
fi

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

work=$(mktemp -d /tmp/safety-models-pg.XXXXXX)
chmod 755 "$work"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$work"; fi
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  as_server_user "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap stop EXIT

as_server_user "$pg_bin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --no-sync \
  >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; exit 1; }
# fsync off: a test cluster that dies is thrown away anyway.
as_server_user "$pg_bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $work -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  >/dev/null || { cat "$work/server.log" >&2; exit 1; }
as_server_user "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres safety_models_test

export SAFETY_MODELS_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/safety_models_test"
echo "with_postgres.sh: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') at $SAFETY_MODELS_TEST_PG_URL" >&2
"$@"
