"""Field rules as traitlets validators, for the widgets' synced traits.

traitlets rolls a held change back (``hold_trait_notifications``, which is how a front
end's ``set_state`` arrives) only when a validator raises a ``TraitError``. So a
widget's validator raises a ``RequestError`` that is also a ``TraitError``: users
catch ``wan.RequestError`` as everywhere, and a refused value never stays set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import traitlets

from ._exceptions import RequestError

T = TypeVar("T")


class TraitRequestError(RequestError, traitlets.TraitError):
    """A ``RequestError`` raised while validating a trait."""


def by_request_rules(check: Callable[[], T]) -> T:
    """``check()``, with its RequestError turned into one traitlets can roll back."""
    try:
        return check()
    except RequestError as exc:
        raise TraitRequestError(exc.problems) from None
