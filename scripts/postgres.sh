#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: loopback only, an unprivileged user, its own
# data directory and a free port, stopped by its pid.
#
#   scripts/postgres.sh start [DIR]   install PostgreSQL if it is missing (Debian packages, as root),
#                                     start a cluster in DIR (created by initdb if needed), print its URL
#   scripts/postgres.sh url [DIR]     print the URL of the cluster running in DIR
#   scripts/postgres.sh status [DIR]  exit 0 if a cluster runs in DIR, 1 if not
#   scripts/postgres.sh stop [DIR]    stop the cluster by its pid and delete DIR
#
# DIR defaults to $FSBARGE_PG_DIR, else ${TMPDIR:-/tmp}/fsbarge-pg-<uid>. It must be reachable by
# the cluster's user (so not under a private directory such as pytest's). The URL is a superuser's,
# with a password generated at initdb, to the `postgres` database; nothing listens but 127.0.0.1.
# As root the cluster runs as $FSBARGE_PG_USER (default: a system user `fsbarge-pg`, created if
# missing); as any other user, as that user. $FSBARGE_PG_BINDIR overrides where initdb/postgres are.
# Errors are one line on stderr starting with "postgres.sh: "; `start` is idempotent and fast once
# PostgreSQL is installed (initdb about a second, a start well under one).
set -euo pipefail

PROG=postgres.sh
START_TIMEOUT=60   # seconds for the server to accept connections
STOP_TIMEOUT=30    # seconds for the server to exit before SIGKILL
MARKER=.fsbarge-pg # marks a directory this script made (and may delete)

die() { echo "$PROG: $*" >&2; exit 1; }

usage() { die "usage: $PROG start|stop|url|status [DIR]"; }

is_root() { [ "$(id -u)" = 0 ]; }

# ------------------------------------------------------------------------------ binaries

find_bindir() {
  if [ -n "${FSBARGE_PG_BINDIR:-}" ]; then
    [ -x "$FSBARGE_PG_BINDIR/initdb" ] || return 1
    echo "$FSBARGE_PG_BINDIR"
    return 0
  fi
  local d
  # Debian keeps each major version's server binaries under /usr/lib/postgresql/<major>/bin
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if d=$(command -v initdb 2>/dev/null); then
    d=$(dirname "$(readlink -f "$d")")
    if [ -x "$d/postgres" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  fi
  return 1
}

install_postgres() {
  is_root || die "PostgreSQL is not installed and this is not root: run: sudo apt-get install postgresql"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no apt-get: install its server (initdb, pg_ctl, postgres) or set FSBARGE_PG_BINDIR"
  echo "$PROG: installing PostgreSQL from the distribution's packages" >&2
  local log
  log=$(mktemp "${TMPDIR:-/tmp}/fsbarge-apt.XXXXXX")
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -q >"$log" 2>&1; then
    die "apt-get update failed (no network?): $(tail -n 1 "$log") (log: $log)"
  fi
  # This script makes its own clusters: keep the package from creating (and starting) the
  # distribution's default one, when we are the ones installing postgresql-common.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    apt-get install -y -q postgresql-common >>"$log" 2>&1 \
      || die "apt-get install postgresql-common failed: $(tail -n 1 "$log") (log: $log)"
    pg_conftool /etc/postgresql-common/createcluster.conf set create_main_cluster off >>"$log" 2>&1 || true
  fi
  apt-get install -y -q --no-install-recommends postgresql >>"$log" 2>&1 \
    || die "apt-get install postgresql failed: $(tail -n 1 "$log") (log: $log)"
  rm -f "$log"
}

# ------------------------------------------------------------------------------ the cluster's user

RUN_AS=""

pick_user() {
  is_root || return 0
  RUN_AS=${FSBARGE_PG_USER:-fsbarge-pg}
  if ! id -u "$RUN_AS" >/dev/null 2>&1; then
    if [ -n "${FSBARGE_PG_USER:-}" ]; then die "no user $RUN_AS (FSBARGE_PG_USER)"; fi
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_AS" >/dev/null 2>&1 \
      || RUN_AS=nobody
  fi
  [ "$(id -u "$RUN_AS")" != 0 ] || die "the cluster must not run as root (FSBARGE_PG_USER=$RUN_AS)"
}

as_user() {
  if [ -n "$RUN_AS" ]; then
    # -u: no login shell (the user has none); keep a neutral working directory
    (cd / && runuser -u "$RUN_AS" -- "$@")
  else
    "$@"
  fi
}

# ------------------------------------------------------------------------------ state in DIR

default_dir() { echo "${FSBARGE_PG_DIR:-${TMPDIR:-/tmp}/fsbarge-pg-$(id -u)}"; }

server_pid() {
  # the postmaster's pid if it runs (first line of postmaster.pid, and that process is a postgres)
  local pidfile="$DIR/data/postmaster.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(head -n 1 "$pidfile" 2>/dev/null) || return 1
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  alive "$pid" || return 1
  case "$(cat "/proc/$pid/comm" 2>/dev/null || echo postgres)" in postgres*) ;; *) return 1 ;; esac
  echo "$pid"
}

alive() {
  # running, not a zombie waiting for a parent that may never reap it (pid 1 in a container)
  kill -0 "$1" 2>/dev/null || return 1
  case "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" in Z | X) return 1 ;; esac
}

free_port() {
  "${PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

random_password() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

init_cluster() {
  local bindir=$1 password
  password=$(random_password)
  printf '%s\n' "$password" >"$DIR/pwfile"
  [ -z "$RUN_AS" ] || chown "$RUN_AS" "$DIR/pwfile"
  chmod 600 "$DIR/pwfile"
  if ! as_user "$bindir/initdb" -D "$DIR/data" -U fsbarge --pwfile="$DIR/pwfile" -E UTF8 --no-locale \
      --auth-host=scram-sha-256 --auth-local=reject --no-sync >"$DIR/initdb.log" 2>&1; then
    rm -f "$DIR/pwfile"
    die "initdb failed: $(tail -n 1 "$DIR/initdb.log")"
  fi
  rm -f "$DIR/pwfile"
  # Throwaway: loopback TCP only, no Unix socket, durability traded for speed.
  cat >>"$DIR/data/postgresql.conf" <<'EOF'

# --- fsbarge test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
EOF
  echo "$password" >"$DIR/password"
  chmod 600 "$DIR/password"
}

start() {
  local pid bindir port attempt
  if pid=$(server_pid) && [ -s "$DIR/url" ]; then
    cat "$DIR/url"
    return 0
  fi
  if [ -n "${FSBARGE_PG_BINDIR:-}" ] && [ ! -x "$FSBARGE_PG_BINDIR/initdb" ]; then
    die "FSBARGE_PG_BINDIR=$FSBARGE_PG_BINDIR has no initdb"
  fi
  bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || die "PostgreSQL was installed but initdb cannot be found"; }
  pick_user
  if [ ! -d "$DIR" ] || [ -z "$(ls -A "$DIR")" ]; then
    mkdir -p "$DIR"
    touch "$DIR/$MARKER"
  fi
  [ -e "$DIR/$MARKER" ] || die "$DIR is not empty and was not made by this script: give an empty or new directory"
  chmod 700 "$DIR"
  [ -z "$RUN_AS" ] || chown "$RUN_AS" "$DIR"
  as_user test -w "$DIR" || die "user $RUN_AS cannot write $DIR: choose a directory it can reach (not under a private one)"
  [ -f "$DIR/data/PG_VERSION" ] || init_cluster "$bindir"
  for attempt in 1 2 3; do
    port=$(free_port)
    # -w: pg_ctl returns once the server accepts connections (or after -t seconds)
    if as_user "$bindir/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" -o "-p $port" -w -t "$START_TIMEOUT" -s start \
        >>"$DIR/pg_ctl.log" 2>&1; then
      echo "postgresql://fsbarge:$(cat "$DIR/password")@127.0.0.1:$port/postgres" >"$DIR/url"
      chmod 600 "$DIR/url"
      cat "$DIR/url"
      return 0
    fi
    # a port taken between our probe and the server's bind: try another one
    grep -q "could not bind\|Address already in use" "$DIR/postgres.log" 2>/dev/null || break
  done
  die "PostgreSQL did not start in $DIR: $(grep -v '^\s*$' "$DIR/postgres.log" 2>/dev/null | tail -n 1)"
}

stop() {
  local pid deadline
  if pid=$(server_pid); then
    # immediate shutdown: the directory is deleted next, so nothing is worth a checkpoint
    kill -QUIT "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "$PROG: PostgreSQL (pid $pid) did not stop in ${STOP_TIMEOUT}s: killed" >&2
        break
      fi
      sleep 0.05
    done
  fi
  # delete only what this script made
  if [ -e "$DIR/$MARKER" ]; then rm -rf "$DIR"; fi
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
DIR=${2:-$(default_dir)}
case "$1" in
  start) start ;;
  stop) stop ;;
  url)
    server_pid >/dev/null && [ -s "$DIR/url" ] || die "no PostgreSQL running in $DIR"
    cat "$DIR/url"
    ;;
  status) server_pid >/dev/null ;;
  *) usage ;;
esac
