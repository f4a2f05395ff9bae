"""The states of a run (one row of the log), their groups, and the moves between them.

Why one module: the session, sweeps, the log, grids/reports and the CLI all ask the
same questions of a run's state (is it still on its way? was it billed? refunded?
may it have been billed?), and the log is the user's account book, so the answers
must not drift apart. ::

    planned ─▶ queued ⇄ processing ─▶ downloading ─▶ completed
       │          │          │              │
       │          │          │              └─▶ images_lost   billed; the links expired first
       │          ├─▶ cancelled (refunded)  └─▶ downloading  billed; fetch failed, a re-run fetches
       │          └──────────┴─▶ failed (refunded)
       ├─▶ error          refused before any task existed: nothing billed
       └─▶ unconfirmed    no answer: the task may exist and be billed

``submitted`` is a sweep cell's state while its submit is held by the server (the
log goes from ``planned`` straight to the task's own state). A run's cost is the
server's word, written the moment the task is known billed (``downloading``), not
after the download. ``unconfirmed`` and ``error`` rows are taken up again by the
next run of the same request (same Idempotency-Key, so never billed twice).
"""

from __future__ import annotations

PLANNED = "planned"  # in the log, about to be sent (or sent with no answer yet)
SUBMITTED = "submitted"  # a cell whose submit the server is holding (Prefer: wait)
QUEUED = "queued"
PROCESSING = "processing"
DOWNLOADING = "downloading"  # the server said completed: billed; images not all on disk yet
COMPLETED = "completed"  # billed, images on disk
FAILED = "failed"  # the task failed: refunded
CANCELLED = "cancelled"  # cancelled while queued: refunded
ERROR = "error"  # refused before a task existed (400/401/402/429, bad setup): nothing billed
IMAGES_LOST = "images_lost"  # billed, but the result links expired before the images were fetched
UNCONFIRMED = "unconfirmed"  # no answer: the task may exist and be billed

STATES = (PLANNED, SUBMITTED, QUEUED, PROCESSING, DOWNLOADING, COMPLETED, FAILED, CANCELLED, ERROR,
          IMAGES_LOST, UNCONFIRMED)

# -- groups -------------------------------------------------------------------------------
IN_FLIGHT = (PLANNED, SUBMITTED, QUEUED, PROCESSING, DOWNLOADING)  # on its way (or its process died)
TERMINAL = (COMPLETED, FAILED, CANCELLED, IMAGES_LOST)  # the run is over for good
BILLED = (DOWNLOADING, COMPLETED, IMAGES_LOST)  # the server said completed: cost_quota is charged
REFUNDED = (FAILED, CANCELLED)  # the hold was given back: cost 0
MAYBE_BILLED = (PLANNED, SUBMITTED, QUEUED, PROCESSING, UNCONFIRMED)  # cost unknown until the server answers
RESUMABLE = (*IN_FLIGHT, UNCONFIRMED, ERROR)  # a re-run takes the row up again, with the same key
SPENT_KEY = REFUNDED  # the server ended that key's task: the next attempt needs a new key
ENDED_WITHOUT_IMAGES = (FAILED, CANCELLED, ERROR, IMAGES_LOST, UNCONFIRMED)  # a cell shows its reason
RETRYABLE = (FAILED, CANCELLED, ERROR, UNCONFIRMED)  # what Sweep.retry_failed() runs again

# -- moves --------------------------------------------------------------------------------
# From a state whose cost is still unknown, anything may follow (a retried task goes back
# to queued; an error or unconfirmed row is taken up again). Once billed, a run only
# moves towards its images; a refunded run stays refunded. A second process writing the
# same run can so never move it backwards (a late "unconfirmed" over a "completed").
_OPEN = frozenset(STATES)
NEXT: dict[str, frozenset[str]] = {
    **dict.fromkeys((*MAYBE_BILLED, ERROR), _OPEN),
    DOWNLOADING: frozenset({DOWNLOADING, COMPLETED, IMAGES_LOST}),
    IMAGES_LOST: frozenset({IMAGES_LOST, COMPLETED}),  # another process fetched them in time
    COMPLETED: frozenset({COMPLETED}),
    FAILED: frozenset({FAILED}),
    CANCELLED: frozenset({CANCELLED}),
}


def sources(new: str) -> tuple[str, ...]:
    """The states a run may be in to move to ``new`` (for a guarded SQL UPDATE)."""
    return tuple(s for s in STATES if new in NEXT[s])


def ended_as(run_state: str | None) -> str:
    """What a caller (a sweep cell) shows for a run that stopped with an error."""
    return run_state if run_state in ENDED_WITHOUT_IMAGES else ERROR
