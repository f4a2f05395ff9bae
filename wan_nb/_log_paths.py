"""Where a log's files are: paths stored relative to the run folder, never followed out of it.

Why relative: a project folder is moved, zipped, published on Binder or mounted at
different places on a team's machines, and must still find its images. Why confined:
a path read back that leads out of the folder (a tampered or received log) is refused,
not followed.
"""

from __future__ import annotations

import os
from pathlib import Path


class RunFolder:
    """The run folder of one log (``home``): images, thumbnails and uploads live under it.

    Paths are checked with string operations and each folder is resolved once: a log
    reads and writes a million of them.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._root = str(self.root)
        self._prefix = self._root.rstrip(os.sep) + os.sep
        self._real_root = os.path.realpath(self._root)
        self._folders: dict[str, bool] = {}  # folder -> inside the run folder (resolved once)

    def __repr__(self) -> str:
        return f"RunFolder({self._root!r})"

    def relative(self, path: str | Path) -> str:
        """``path`` as the log stores it: relative to the run folder, with forward slashes."""
        text = os.fspath(path)
        if not os.path.isabs(text):
            return text.replace(os.sep, "/")  # already relative to the run folder
        if text.startswith(self._prefix) and ".." not in text:
            return text[len(self._prefix):].replace(os.sep, "/")
        try:
            return os.path.relpath(text, self._root).replace(os.sep, "/")
        except ValueError:  # another drive (Windows): nothing relative exists
            return text.replace(os.sep, "/")

    def _inside(self, path: str | Path) -> str | None:
        """The normalised absolute path if it is inside the run folder (``..`` and symlinks
        resolved: the file if it is a link, its folder once), else None."""
        p = os.path.normpath(os.path.join(self._root, os.fspath(path)))
        if not p.startswith(self._prefix):
            return None
        try:
            if os.path.islink(p):
                return p if _under(os.path.realpath(p), self._real_root) else None
            folder = os.path.dirname(p)
            inside = self._folders.get(folder)
            if inside is None:
                inside = self._folders[folder] = _under(os.path.realpath(folder), self._real_root)
        except (OSError, RuntimeError):  # unreadable, or a symlink loop
            return None
        return p if inside else None

    def absolute(self, stored: str | None) -> str | None:
        """The file a stored path names, or None when it leads out of the run folder
        (``../x.jpg``, an absolute path, a symlink elsewhere): never followed."""
        return None if stored is None else self._inside(stored)

    def absolute_many(self, stored: list[str | None]) -> list[str | None]:
        """``absolute`` for a column of stored paths, each distinct path checked once."""
        seen: dict[str, str | None] = {}
        out: list[str | None] = []
        for s in stored:
            if s is None:
                out.append(None)
            elif s in seen:
                out.append(seen[s])
            else:
                out.append(seen.setdefault(s, self._inside(s)))
        return out

    def contains(self, path: str | Path) -> bool:
        """Is ``path`` inside the run folder, with ``..`` and symlinks resolved?"""
        return self._inside(path) is not None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
