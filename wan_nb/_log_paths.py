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
    """The run folder of one log (``home``): images, thumbnails and uploads live under it."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self._real_root = self.root.resolve()
        self._folders: dict[Path, bool] = {}  # folder -> inside the run folder (resolved once)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def relative(self, path: str | Path) -> str:
        """``path`` as the log stores it: relative to the run folder, with forward slashes."""
        p = Path(path)
        if not p.is_absolute():
            return p.as_posix()  # already relative to the run folder
        try:
            return Path(os.path.relpath(p, self.root)).as_posix()
        except ValueError:  # another drive (Windows): nothing relative exists
            return p.as_posix()

    def absolute(self, stored: str | None) -> str | None:
        """The file a stored path names, or None when it leads out of the run folder
        (``../x.jpg``, an absolute path, a symlink elsewhere): never followed."""
        if stored is None:
            return None
        path = Path(os.path.normpath(self.root / stored))
        if not self.contains(path):
            return None
        return str(path)

    def absolute_many(self, stored: list[str | None]) -> list[str | None]:
        """``absolute`` for a column of stored paths: each distinct path checked once, with
        string operations (a log reads a million of them), the same answers."""
        root = str(self.root)
        prefix = root + os.sep
        real_root = str(self._real_root)
        seen: dict[str, str | None] = {}
        out: list[str | None] = []
        for s in stored:
            if s is None:
                out.append(None)
                continue
            found = seen.get(s, _UNSEEN)
            if found is _UNSEEN:
                p = os.path.normpath(os.path.join(root, s))
                inside = p.startswith(prefix) and self._folder_inside(os.path.dirname(p), real_root)
                if inside and os.path.islink(p):
                    inside = _under(os.path.realpath(p), real_root)
                found = seen[s] = p if inside else None
            out.append(found)  # type: ignore[arg-type]  # _UNSEEN never reaches here
        return out

    def _folder_inside(self, folder: str, real_root: str) -> bool:
        key = Path(folder)
        inside = self._folders.get(key)
        if inside is None:
            try:
                inside = _under(os.path.realpath(folder), real_root)
            except (OSError, RuntimeError):
                inside = False
            self._folders[key] = inside
        return inside

    def contains(self, path: str | Path) -> bool:
        """Is ``path`` inside the run folder, with ``..`` and symlinks resolved?

        Lexical check first (``../x.jpg``, absolute paths); then the file itself if it
        is a symlink, and its folder (resolved once per folder: a log lists thousands
        of images in a few hundred folders).
        """
        p = Path(os.path.normpath(self.root / path))
        if not p.is_relative_to(self.root):
            return False
        try:
            if p.is_symlink():
                return p.resolve().is_relative_to(self._real_root)
            folder = p.parent
            inside = self._folders.get(folder)
            if inside is None:
                inside = self._folders[folder] = folder.resolve().is_relative_to(self._real_root)
            return inside
        except (OSError, RuntimeError):  # unreadable, or a symlink loop
            return False


_UNSEEN = object()


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
