"""Money as users read it: one spelling of a dollar amount everywhere.

The API bills in quota (500,000 = $1, ``_spec``); one image costs fractions of a cent,
so amounts are shown with five decimals ("$0.02295"), and budgets, which users type as
round figures, with two ("$2.00").
"""

from __future__ import annotations

from . import _spec


def usd(amount: float) -> str:
    """``0.02295`` -> ``"$0.02295"``: an amount that was (or will be) billed."""
    return f"${amount:.5f}"


def quota_usd(quota: int) -> str:
    """A quota figure in dollars: ``11475`` -> ``"$0.02295"``."""
    return usd(_spec.quota_to_usd(quota))


def budget(amount: float | None) -> str:
    """A limit the user set: ``2`` -> ``"$2.00"`` (None: ``"no limit"``)."""
    return "no limit" if amount is None else f"${amount:.2f}"
