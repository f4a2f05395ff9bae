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
