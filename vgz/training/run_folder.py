"""A run folder's own files: its settings (``config.json``) and the lock held while a process trains."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["RunFolderError", "RunLock", "read_run_config", "RUN_CONFIG", "LOCK_FILE"]

RUN_CONFIG = "config.json"
LOCK_FILE = ".vgz-train.lock"


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (exists without --resume, settings differ, in use...)."""


def read_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's ``config.json`` (None when there is none).

    Raises:
        RunFolderError: the file exists but is not a run config.
    """
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFolderError(f"{path}: cannot read the run's settings ({exc}); restore it, or start over in "
                             "another --outdir") from None
    if not isinstance(record, dict) or not {"recipe", "recipe_config", "run", "data"} <= set(record):
        raise RunFolderError(f"{path} is not a vgz training run's config (expected the keys recipe, "
                             "recipe_config, run and data); choose another --outdir")
    return record


class RunLock:
    """An exclusive lock on a run folder, held while one process trains in it.

    An ``fcntl.flock`` on ``.vgz-train.lock`` (which holds the owner's pid): the OS drops it when the
    process ends however it ends, so a crashed run never leaves a stale lock. Without ``fcntl``
    (Windows) there is no locking.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (creating the folder).

        Raises:
            RunFolderError: another process holds it (its pid is named when known).
        """
        try:
            import fcntl
        except ImportError:
            return self
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {owner})" if owner.isdigit() else ""
            raise RunFolderError(f"{self.run_dir} is in use by another training process{who}; wait for it to end, "
                                 "or choose another --outdir") from None
        # The pid is for the message above only; the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the file releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()

