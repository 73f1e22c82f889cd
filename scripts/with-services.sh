#!/bin/sh
# Run a command with a throwaway PostgreSQL and Redis on loopback, exported as
# DATABASE_URL and REDIS_URL; both are stopped and deleted afterwards.
# Usage: scripts/with-services.sh COMMAND [ARGS...]
set -eu

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }

work=$(mktemp -d /tmp/whiteboard-services.XXXXXX)
chmod 755 "$work"
as_pg() { "$@"; }
if [ "$(id -u)" = "0" ]; then
    # PostgreSQL refuses to run as root: its cluster belongs to the postgres user.
    mkdir "$work/pg" && chown postgres "$work/pg"
    as_pg() { runuser -u postgres -- "$@"; }
else
    mkdir "$work/pg"
fi
pg_port=$(free_port)
redis_port=$(free_port)

cleanup() {
    as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
    [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

as_pg "$pg_bin/initdb" -D "$work/pg/data" -U whiteboard -A trust -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o \
    "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
    start >/dev/null
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"

export DATABASE_URL="postgres://whiteboard@127.0.0.1:$pg_port/postgres"
export REDIS_URL="redis://127.0.0.1:$redis_port/0"
echo "PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
"$@"
