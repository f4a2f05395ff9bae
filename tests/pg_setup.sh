#!/usr/bin/env bash
# PostgreSQL for the team-log tests (tests/pg_server.py starts a throwaway server from its
# programs: initdb, pg_ctl, psql). Debian's package; no server is left running and no
# cluster is made here (the tests make their own). Idempotent, quiet.
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "pg_setup: PostgreSQL is missing and apt-get is not available; install PostgreSQL yourself" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "pg_setup: PostgreSQL is missing; run as root or install sudo to install it" >&2
        exit 1
    fi
fi

echo "pg_setup: installing postgresql (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
${SUDO[@]+"${SUDO[@]}"} apt-get update -qq >/dev/null
# the package's own cluster is not needed (the tests make theirs) and must not hold port 5432
${SUDO[@]+"${SUDO[@]}"} mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | ${SUDO[@]+"${SUDO[@]}"} tee /etc/postgresql-common/createcluster.d/wan-nb-tests.conf >/dev/null
${SUDO[@]+"${SUDO[@]}"} apt-get install -y -qq postgresql >/dev/null

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "pg_setup: apt-get finished but initdb is still missing" >&2
    exit 1
fi
