"""Settings, resolved as: argument → environment variable → constant.

The API key is read here and handed to the client; it is never stored on disk,
printed, logged or put in an exception. A log's URL (``WAN_NB_LOG``) is read here too,
and its password is kept out of every message, repr and log line: ``LogTarget.label``
is the URL without it, and ``scrub`` removes every password a URL brought from any text.
"""

from __future__ import annotations

import getpass
import ipaddress
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ._exceptions import ConfigError

ENV_API_KEY = "WAVE_API_KEY"
ENV_BASE_URL = "WAN_NB_BASE_URL"
ENV_HOME = "WAN_NB_HOME"
ENV_USER = "WAN_NB_USER"
ENV_LOG = "WAN_NB_LOG"
ENV_BUDGET = "WAN_NB_BUDGET_USD"  # the studio's session budget (wan-nb studio --budget puts it here)

DEFAULT_BASE_URL = "https://www.qingbo.dev/v1"
DEFAULT_HOME = "wan_runs"

DEFAULT_TIMEOUT = 600.0  # overall deadline for one run (submit → images on disk)
HTTP_TIMEOUT = 30.0  # one HTTP exchange (a Prefer: wait submit adds its wait)
PREFER_WAIT = 55  # seconds the server may hold a submit (the API caps at 60)
# A form's run: held this briefly, so a quick task still answers in one request and a
# longer one is polled, its status line saying queued / processing while it runs.
INTERACTIVE_PREFER_WAIT = 2
LINK_MARGIN = 600.0  # a result link is reused as an input only while it has 10 min left


def api_key(value: str | None = None) -> str | None:
    return value or os.environ.get(ENV_API_KEY) or None


def base_url(value: str | None = None) -> str:
    return (value or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")


def explicit_base_url(value: str | None = None) -> str | None:
    """The base URL the user chose (argument or environment), None for the default."""
    chosen = value or os.environ.get(ENV_BASE_URL)
    return chosen.rstrip("/") if chosen else None


def budget_usd() -> float | None:
    """``WAN_NB_BUDGET_USD`` as dollars (None when unset); ValueError naming it when it is no budget."""
    text = os.environ.get(ENV_BUDGET, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{ENV_BUDGET} must be a number of dollars, 0 or more (got {text!r})")
    return value


def user(value: str | None = None) -> str:
    """Who is working: ``WAN_NB_USER``, else the OS user name (recorded with runs and ratings)."""
    name = value or os.environ.get(ENV_USER)
    if not name:
        try:
            name = getpass.getuser()
        except (OSError, KeyError):  # no user name in the environment or the password database
            name = "unknown"
    return name


def home(value: str | os.PathLike[str] | None = None, setting: str = "home=") -> Path:
    """The run folder: ``value`` (the argument ``setting`` names), else ``WAN_NB_HOME``, else
    ./wan_runs. A URL is a ConfigError, never a folder named after it (password included):
    a log's URL goes in ``log=`` / ``WAN_NB_LOG``."""
    chosen = value or os.environ.get(ENV_HOME) or DEFAULT_HOME
    if is_url(chosen):
        name = setting if value else ENV_HOME
        raise ConfigError(f"{name} is a run folder (the images' folder), not a URL: got {redact_url(str(chosen))}; "
                          f"a log's URL goes in log= or {ENV_LOG}, the run folder in {name}")
    return Path(chosen)


LOCAL_NAMES = ("localhost", "localhost.")


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or localhost; decided from the text alone (no DNS)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """An http(s) URL on this machine: the simulator's, never the hosted API's (no DNS)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)


# -- where the log is: a path (SQLite, the default) or a database URL -------------------------

POSTGRES_SCHEMES = ("postgresql", "postgres")
SQLITE_SCHEME = "sqlite"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# a URL's password wherever it appears: scheme://user:PASSWORD@ (up to the last @ before the
# host's /?#) and ?password=PASSWORD / &password=PASSWORD
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):[^/?#\s]*@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&#\s]*")
# a password said on its own (a driver's "password=...", a repr's 'pw'): only as a whole token,
# never inside a longer word (a password "wan" leaves wan_nb alone)
_EDGE = r"\s'\"=,;&(){}<>"
_SECRETS: set[str] = set()  # every password a parsed URL carried (and its %-encoded spelling)
_SECRETS_LOCK = threading.Lock()
HIDDEN = "***"


@dataclass(frozen=True)
class LogTarget:
    """Where a log is: ``kind`` "sqlite" (``path``) or "postgresql" (``url``, for the driver
    only: it holds the password). ``label`` names it in messages, never with the password."""

    kind: str
    label: str
    path: Path | None = None
    url: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"LogTarget({self.kind}, {self.label!r})"


def _remember(secret: str | None) -> None:
    if secret:
        with _SECRETS_LOCK:
            _SECRETS.update({secret, quote(secret, safe=""), unquote(secret)})


def scrub(text: str) -> str:
    """``text`` with passwords replaced by ``***`` (messages, reprs, log lines: whatever a
    driver or a traceback might repeat): any URL's password by its place (``user:***@``,
    ``password=***``), and every password a log URL carried where it stands as a whole token."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{HIDDEN}@", text)
    text = _QUERY_PASSWORD.sub(lambda m: m["head"] + HIDDEN, text)
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = re.sub(f"(?<![^{_EDGE}]){re.escape(secret)}(?![^{_EDGE}])", HIDDEN, text)
    return text


def redact_url(url: str) -> str:
    """A URL as messages show it: the password (in the user part or ``?password=``) replaced.
    A URL too malformed to parse is still scrubbed (by the password's place)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    _remember(parts.password)
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "password":
            _remember(value)
    return scrub(url)


def is_url(value: str | os.PathLike[str]) -> bool:
    """Does ``value`` look like a URL (``scheme://...``) rather than a path?"""
    return isinstance(value, str) and _URL.match(value) is not None


def parse_log(value: str | os.PathLike[str], setting: str = "the log") -> LogTarget:
    """A log given as a path (a ``log.sqlite`` file or its run folder), ``sqlite:///path``
    or ``postgresql://user:password@host:port/database``. A URL of any other engine, or a
    malformed one, is a ConfigError naming ``setting`` (``log=``, ``WAN_NB_LOG``), never
    taken as a file name."""
    if not is_url(value):
        path = Path(value)
        if path.is_dir():
            path = path / "log.sqlite"
        return LogTarget("sqlite", str(path.absolute()), path=path.absolute())
    text = str(value)
    label = redact_url(text)
    scheme = _URL.match(text).group(1).lower()  # type: ignore[union-attr]  # is_url matched it
    if scheme.split("+")[0] in POSTGRES_SCHEMES:  # postgresql+psycopg://, as SQLAlchemy writes it, too
        text = "postgresql" + text[len(scheme):]
        try:
            parts = urlsplit(text)
            port = parts.port  # a port that is not a number from 0 to 65535 raises here
        except ValueError as exc:
            raise ConfigError(f"{setting} {label} is not a valid PostgreSQL URL ({scrub(str(exc))}): it is "
                              "postgresql://user:password@host:5432/database, the port a number from 1 to 65535, "
                              "an IPv6 host in brackets ([::1])") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigError(f"{setting} {label} names no host: postgresql://user:password@host:5432/database")
        user = f"{parts.username}@" if parts.username else ""
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host  # IPv6
        shown_port = f":{port}" if port else ""
        return LogTarget("postgresql", f"postgresql://{user}{host}{shown_port}{parts.path}", url=text)
    if scheme == SQLITE_SCHEME:
        rest = text[len(SQLITE_SCHEME) + 3:]  # sqlite:///relative/log.sqlite, sqlite:////absolute/log.sqlite
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"{setting} {label}: an SQLite log URL is sqlite:///relative/path "
                              "or sqlite:////absolute/path")
        return parse_log(rest[1:])
    raise ConfigError(
        f"{setting} {label} is a URL of a database wan_nb does not know ({scheme}); a log is a path (a log.sqlite "
        "file or its run folder), sqlite:///path, or postgresql://user:password@host:5432/database "
        f"(a log's URL goes in log= or {ENV_LOG})")


def log_target(value: str | os.PathLike[str] | None = None) -> LogTarget | None:
    """The log chosen by argument, else ``WAN_NB_LOG``; None: the run folder's own log.sqlite."""
    if value is not None and str(value) != "":
        return parse_log(value, "log=")
    chosen = os.environ.get(ENV_LOG) or None
    return None if chosen is None else parse_log(chosen, ENV_LOG)
