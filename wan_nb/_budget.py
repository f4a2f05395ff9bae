"""A session's money: what it may spend, what the server billed, what may have been billed.

Why one object with one lock: sweep cells run concurrently on the event loop and
their log writes on another thread; a price is held before a run is sent, so two
cells that each fit the budget cannot both be sent when together they do not.
Unconfirmed money (a run with no answer: it may have been billed) counts like
billed money until running it again settles it.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _money, _spec
from . import _states as S
from ._exceptions import BudgetError
from ._options import check_usd

DEFAULT_SWEEP_BUDGET_USD = 2.00  # a sweep costing more asks for confirm=True first


class Budget:
    """Hold a price before a run is sent, settle it when the run stops, refuse what would overshoot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._limit_usd: float | None = None
        self._sweep_limit_usd: float | None = DEFAULT_SWEEP_BUDGET_USD
        self.billed_quota = 0  # billed through this session (the server's word)
        self.unconfirmed: dict[str, int] = {}  # run_id → price of runs that may have been billed
        self.held_quota = 0  # runs in flight, so concurrent runs cannot overshoot

    # -- limits --------------------------------------------------------------------------
    @property
    def limit_usd(self) -> float | None:
        """Session-wide cap, never exceeded (None: no cap)."""
        return self._limit_usd

    @limit_usd.setter
    def limit_usd(self, value: Any) -> None:
        self._limit_usd = check_usd("usd", value)

    @property
    def sweep_limit_usd(self) -> float | None:
        """Above it a sweep needs ``confirm=True`` (None: never ask)."""
        return self._sweep_limit_usd

    @sweep_limit_usd.setter
    def sweep_limit_usd(self, value: Any) -> None:
        self._sweep_limit_usd = check_usd("per_sweep", value)

    # -- figures -------------------------------------------------------------------------
    @property
    def unconfirmed_quota(self) -> int:
        return sum(self.unconfirmed.values())

    @property
    def spent_quota(self) -> int:
        """Billed plus unconfirmed: what the limit counts."""
        return self.billed_quota + self.unconfirmed_quota

    @property
    def left_usd(self) -> float | None:
        """What may still be spent (None: no cap)."""
        if self._limit_usd is None:
            return None
        return max(0.0, self._limit_usd - _spec.quota_to_usd(self.spent_quota))

    # -- the three moves -----------------------------------------------------------------
    def check(self, quota: int, what: str = "this request") -> None:
        """Raise BudgetError if ``quota`` more would take the session past its limit."""
        limit_usd = self._limit_usd
        if limit_usd is None:
            return
        limit = round(limit_usd * _spec.QUOTA_PER_USD)
        spent = self.spent_quota
        if spent + self.held_quota + quota > limit:
            q = _money.quota_usd
            maybe = f", {q(self.unconfirmed_quota)} of it unconfirmed" if self.unconfirmed_quota else ""
            raise BudgetError(
                f"{what} would cost {q(quota)}, but the session budget is {_money.budget(limit_usd)} "
                f"({q(spent)} spent{maybe}, {q(self.held_quota)} held by runs in flight); nothing was sent.",
                hint="Raise it with wan.set_budget(usd).", cost_usd=_spec.quota_to_usd(quota), limit_usd=limit_usd,
            )

    def hold(self, run_id: str | None, quota: int, *, checked: bool) -> None:
        """Reserve a run's price before it is sent (``checked``: against the limit).
        A run taken up again moves from unconfirmed to held."""
        with self._lock:
            if run_id is not None:
                self.unconfirmed.pop(run_id, None)
            if checked:
                self.check(quota)
            self.held_quota += quota

    def settle(self, run_id: str, held: int, state: str, billed: int) -> None:
        """A run stopped in ``state``: its hold becomes billed, unconfirmed, or nothing."""
        with self._lock:
            self.held_quota -= held
            if state in S.BILLED:
                self.billed_quota += billed
            elif state in S.MAYBE_BILLED and held:
                self.unconfirmed[run_id] = held
