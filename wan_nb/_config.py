"""Settings, resolved as: argument → environment variable → constant.

The API key is read here and handed to the client; it is never stored on disk,
printed, logged or put in an exception.
"""

from __future__ import annotations

import getpass
import ipaddress
import math
import os
from pathlib import Path
from urllib.parse import urlsplit

ENV_API_KEY = "WAVE_API_KEY"
ENV_BASE_URL = "WAN_NB_BASE_URL"
ENV_HOME = "WAN_NB_HOME"
ENV_USER = "WAN_NB_USER"
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


def home(value: str | os.PathLike[str] | None = None) -> Path:
    return Path(value or os.environ.get(ENV_HOME) or DEFAULT_HOME)


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
