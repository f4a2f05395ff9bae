"""A throwaway PostgreSQL server for the tests (``shared/recipes/postgres.md``).

One server per test session, on a free loopback port, in a temporary data directory,
stopped at the end. Set-up goes over its Unix socket (trust); the tests connect over TCP
with a password (scram-sha-256), so a password is really sent and really checked.
Each test that wants a log gets a database of its own (``new_database``).

Where PostgreSQL is missing the tests that need it are skipped, or fail under CI
(``CI=true``): CI installs it (``tests/pg_setup.sh``) and must run them.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROLE = "wan_team"


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return str(Path(found[-1]).parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_reason() -> str | None:
    """Why the PostgreSQL tests cannot run here (None: they can)."""
    if _bindir() is None:
        return "PostgreSQL is not installed (tests/pg_setup.sh installs it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


def unavailable(reason: str) -> None:
    """Skip here; fail under CI, which must run every test."""
    import pytest  # beside its use: benchmarks/log_postgres starts a server with this module, without pytest

    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}")
    pytest.skip(reason)


class PgServer:
    """initdb + pg_ctl as the ``postgres`` system user when run as root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        assert self.bindir is not None
        self.password = "pw-" + secrets.token_urlsafe(18)  # the secret the leak checks look for
        self.dir = Path(tempfile.mkdtemp(prefix="wan-nb-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._n = 0
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        else:
            self._as = []
        self.dir.chmod(0o700)

    def _run(self, *cmd: str, timeout: float = 120) -> str:
        out = subprocess.run([*self._as, *cmd], cwd="/", capture_output=True, text=True, timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"{cmd[0]} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def init(self) -> PgServer:
        self._run(f"{self.bindir}/initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        self.start()
        self.psql(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self.password}'")
        self.psql(f"CREATE DATABASE wan OWNER {ROLE}")
        return self

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", "90", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "stop", "-m", mode, "-w", "-t", "60")

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self._run("psql", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", db,
                         "-v", "ON_ERROR_STOP=1", "-Atc", sql)

    def url(self, db: str, password: str | None = None) -> str:
        return f"postgresql://{ROLE}:{password or self.password}@127.0.0.1:{self.port}/{db}"

    def new_schema(self) -> str:
        """A fresh, empty schema of the database ``wan``: the URL of a log no other test uses
        (libpq's ``options`` names the schema; a few milliseconds, where a database takes 0.2 s)."""
        import psycopg

        self._n += 1
        name = f"t{self._n}"
        with psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname="wan",
                             autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {name} AUTHORIZATION {ROLE}")
        return self.url("wan") + f"?options=-csearch_path%3D{name}"

    def new_database(self, ctype: str | None = None) -> str:
        """A fresh, empty database owned by the test role: its URL (with the password).
        ``ctype``: its LC_CTYPE and LC_COLLATE (``"C"``: upper() leaves é alone), else the server's."""
        self._n += 1
        name = f"wan_{os.getpid()}_{self._n}"
        locale = f" TEMPLATE template0 LC_CTYPE '{ctype}' LC_COLLATE '{ctype}'" if ctype else ""
        self.psql(f"CREATE DATABASE {name} OWNER {ROLE}{locale}")
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_until_accepting(server: PgServer, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            server.psql("SELECT 1")
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
