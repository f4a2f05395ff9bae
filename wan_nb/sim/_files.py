"""In-memory file hosting: uploaded inputs and result images with expiring links.

The hosted API hands out result links that stop working (24 hours per the user's
document); a client that treats a link as storage loses images. The simulator serves
results only until ``expires_at`` and answers 410 ``link_expired`` afterwards, with a
TTL short enough to test. Results are not reachable before their task completes.
Everything is kept in memory: a simulator is a throwaway, and nothing leaks to disk.
Result bytes are bounded (``max_result_bytes``): past the bound the oldest results'
links expire early, which is what a real link does anyway and costs nothing to a
client that downloads at once. This keeps a kernel that sweeps for hours (Binder has
little memory) from growing without end.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .. import _spec
from .._formats import FILE_TYPES, content_type

# The API's formats, by extension (one table: _images.FILE_TYPES).
CONTENT_TYPES = {FILE_TYPES[fmt][0]: FILE_TYPES[fmt][1] for fmt in _spec.IMAGE_FORMATS}

_UPLOAD = re.compile(r"^uploads/([0-9a-f]{64})\.(" + "|".join(CONTENT_TYPES) + ")$")
_RESULT = re.compile(r"^results/([A-Za-z0-9_-]+)/(\d+)\.jpg$")


@dataclass
class Upload:
    sha256: str
    ext: str
    width: int
    height: int
    format: str
    data: bytes

    @property
    def path(self) -> str:
        return f"uploads/{self.sha256}.{self.ext}"


@dataclass
class FileAnswer:
    """``data`` and ``content_type`` when found; else ``missing`` or ``expired_at``."""

    data: bytes | None = None
    content_type: str = ""
    expired_at: int | None = None

    @property
    def found(self) -> bool:
        return self.data is not None


DEFAULT_MAX_RESULT_BYTES = 256 * 2**20


class FileStore:
    def __init__(self, max_result_bytes: int | None = DEFAULT_MAX_RESULT_BYTES) -> None:
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._results: dict[str, tuple[list[bytes], float]] = {}  # task_id -> (images, expires)
        self._live: OrderedDict[str, int] = OrderedDict()  # task_id -> bytes held, oldest first
        self._max = max_result_bytes
        self.held_bytes = 0

    def put_upload(self, upload: Upload) -> Upload:
        with self._lock:
            return self._uploads.setdefault(upload.path, upload)

    def publish(self, task_id: str, images: list[bytes], expires_at: float) -> None:
        """Make a completed task's images reachable until ``expires_at`` (unix seconds)."""
        with self._lock:
            self._results[task_id] = (images, expires_at)
            self._live[task_id] = sum(len(b) for b in images)
            self.held_bytes += self._live[task_id]
            while self._max is not None and self.held_bytes > self._max and len(self._live) > 1:
                oldest = next(iter(self._live))
                self._expire(oldest, min(self._results[oldest][1], time.time()))

    def _expire(self, task_id: str, when: float) -> None:
        """Free a result's bytes; its link answers 410 link_expired from ``when`` on."""
        self.held_bytes -= self._live.pop(task_id, 0)
        self._results[task_id] = ([], when)

    def expires_at(self, task_id: str) -> float | None:
        """When a result's links stop working (earlier than announced if it was evicted)."""
        with self._lock:
            entry = self._results.get(task_id)
        return None if entry is None else entry[1]

    def get(self, path: str) -> FileAnswer:
        """``path`` relative to ``/sim/files/``."""
        m = _UPLOAD.match(path)
        if m:
            with self._lock:
                up = self._uploads.get(path)
            return FileAnswer(up.data, CONTENT_TYPES[up.ext]) if up else FileAnswer()
        m = _RESULT.match(path)
        if m:
            with self._lock:
                entry = self._results.get(m.group(1))
                if entry is None:
                    return FileAnswer()
                images, expires = entry
                if time.time() >= expires:
                    self._expire(m.group(1), expires)  # remember only that the link existed
                    return FileAnswer(expired_at=int(expires))
            i = int(m.group(2))
            return FileAnswer(images[i], content_type("JPEG")) if i < len(images) else FileAnswer()
        return FileAnswer()
