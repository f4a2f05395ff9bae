"""What ``wan-nb studio`` runs: the money rule, Voilà's command line and environment, its URL.

Decided before anything starts (``plan``), so a refusal costs nothing and prints one line:

- **A key needs a budget.** With ``WAVE_API_KEY`` set, whatever the base URL, the studio
  would spend real money for whoever opens it: without ``--budget`` or
  ``WAN_NB_BUDGET_USD`` it does not start.
- **Loopback by default, with a token.** Voilà listens on 127.0.0.1 unless ``--ip`` says
  otherwise (then a warning), and asks every request for a token drawn here (given to
  Voilà in its environment as ``JUPYTER_TOKEN``, so it is not on a command line); the URL
  printed carries it.
- **The key stays in the kernel.** It reaches the studio's kernel only through the
  environment it inherits, never a command line; the run folder and the budget go the
  same way (``WAN_NB_HOME``, made absolute; ``WAN_NB_BUDGET_USD``, with
  ``WAN_NB_BUDGET_SINCE``: the budget is shared by every page Voilà opens, counted in the
  run folder's log from the time the command started).

The notebook served is the one shipped in the package (``app/studio.ipynb``), so this
works from an installed wheel in any folder; ``notebooks/studio.ipynb`` is the same.
"""

from __future__ import annotations

import datetime
import importlib.util
import ipaddress
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from . import _config
from ._money import budget as budget_text

STUDIO_NOTEBOOK = Path(__file__).resolve().parent / "app" / "studio.ipynb"
DEFAULT_PORT = 8866  # Voilà's own default
LOOPBACK = "127.0.0.1"
ENV_SINCE = "WAN_NB_BUDGET_SINCE"  # the studio's budget counts the run folder's spending from this time
ENV_TOKEN = "JUPYTER_TOKEN"  # read by the Jupyter server's identity provider when Voilà's auto_token is on


class ServeError(ValueError):
    """A reason not to start, in one line."""


@dataclass(frozen=True)
class Plan:
    """Everything needed to start Voilà, decided before it starts."""

    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    url: str  # with the token
    ip: str
    port: int
    home: Path
    budget_usd: float | None
    paid: bool  # a key is set: runs may be billed

    @property
    def local(self) -> bool:
        return _config.is_loopback_host(self.ip)

    def lines(self) -> list[str]:
        """What the command says once Voilà answers."""
        money = (f"API key set: runs are billed, within a budget of {budget_text(self.budget_usd)}"
                 if self.paid else "no API key: the built-in simulator, nothing is billed")
        return [f"wan-nb studio: {self.url}",
                f"  {money}; runs are saved in {self.home}",
                "  Ctrl-C stops it"]


def parse_budget(text: str | None) -> float | None:
    """``--budget`` as dollars (None when not given); ServeError when it is no budget."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise ServeError(f"--budget must be a number of dollars, 0 or more (got {text!r})")
    return value


def free_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


def url_host(ip: str) -> str:
    """How a browser names the address Voilà listens on."""
    if ip in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    try:
        return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:  # a host name
        return ip


def plan(*, port: int | None = None, home: str | None = None, budget: str | None = None,
         ip: str = LOOPBACK, token: str | None = None) -> Plan:
    """The studio's server, checked: ServeError (nothing started) when it must not or cannot run."""
    limit = parse_budget(budget)
    if limit is None:  # --budget wins over the environment
        try:
            limit = _config.budget_usd()
        except ValueError as exc:
            raise ServeError(str(exc)) from None
    paid = bool(_config.api_key())
    if paid and limit is None:
        raise ServeError(f"{_config.ENV_API_KEY} is set, so the studio would spend real money for whoever opens it: "
                         f"give it a budget with --budget USD or {_config.ENV_BUDGET} (nothing was started)")
    for module, what in (("voila", "Voilà"), ("ipykernel", "ipykernel")):
        if importlib.util.find_spec(module) is None:  # the lab extra brings both (Voilà serves, ipykernel runs)
            raise ServeError(f"{what} is not installed: pip install 'wan_nb[lab]' (the studio needs it)")
    if not STUDIO_NOTEBOOK.is_file():
        raise ServeError(f"the studio notebook is missing from the package ({STUDIO_NOTEBOOK}): reinstall wan_nb")
    if port is None:
        port = DEFAULT_PORT
    elif port == 0:
        port = free_port(ip if _config.is_loopback_host(ip) else "")
    elif not 0 < port < 65536:
        raise ServeError(f"--port must be 1-65535, or 0 for a free one (got {port})")
    folder = _config.home(home).expanduser().absolute()
    token = token or secrets.token_hex(24)
    env = dict(os.environ)
    env[_config.ENV_HOME] = str(folder)
    if limit is not None:
        env[_config.ENV_BUDGET] = repr(limit)
        # one budget for every page (Voilà starts a kernel per page): what the log holds since now
        env[ENV_SINCE] = datetime.datetime.now(datetime.UTC).isoformat()
    env[ENV_TOKEN] = token
    cmd = [
        sys.executable, "-m", "voila", str(STUDIO_NOTEBOOK),
        "--no-browser", f"--port={port}", "--Voila.port_retries=0", f"--Voila.ip={ip}",
        "--Voila.auto_token=True",  # the token of JUPYTER_TOKEN (a token on the command line shows in ps)
        "--VoilaConfiguration.show_tracebacks=False", "--VoilaConfiguration.strip_sources=True",
    ]
    url = f"http://{url_host(ip)}:{port}/?token={token}"
    return Plan(cmd=cmd, env=env, cwd=STUDIO_NOTEBOOK.parent, url=url, ip=ip, port=port, home=folder,
                budget_usd=limit, paid=paid)
