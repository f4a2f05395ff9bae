"""In-memory file hosting: uploaded inputs and result images with expiring links.

The hosted API hands out result links that stop working (24 hours per the user's
document); a client that treats a link as storage loses images. The simulator serves
results only until ``expires_at`` and answers 410 ``link_expired`` afterwards, with a
TTL short enough to test. Results are not reachable before their task completes.
Everything is kept in memory: a simulator is a throwaway, and nothing leaks to disk.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

_UPLOAD = re.compile(r"^uploads/([0-9a-f]{64})\.(jpg|png|webp)$")
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


class FileStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._results: dict[str, tuple[list[bytes], float]] = {}  # task_id -> (images, expires)

    def put_upload(self, upload: Upload) -> Upload:
        with self._lock:
            return self._uploads.setdefault(upload.path, upload)

    def publish(self, task_id: str, images: list[bytes], expires_at: float) -> None:
        """Make a completed task's images reachable until ``expires_at`` (unix seconds)."""
        with self._lock:
            self._results[task_id] = (images, expires_at)

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
                    # Free the bytes; remember only that the link existed.
                    self._results[m.group(1)] = ([], expires)
                    return FileAnswer(expired_at=int(expires))
            i = int(m.group(2))
            return FileAnswer(images[i], "image/jpeg") if i < len(images) else FileAnswer()
        return FileAnswer()
