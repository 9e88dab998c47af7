"""Small helpers shared across vgz (no torch import at module level).

Every file and folder vgz writes goes through the atomic helpers here: the result appears under its
name only once it is complete, and it gets the permissions any other tool's would (``0666`` /
``0777`` less the umask, or the mode of the file it replaces), not the private ``0600`` / ``0700``
of a temporary name.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_write_text", "atomic_dir", "check_replaceable", "current_umask",
           "OutputFolderError", "describe_os_error", "one_line"]


class OutputFolderError(FileExistsError):
    """An output folder cannot be replaced: it holds files vgz did not write, or it is ``.`` or a
    parent of the working directory."""


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and set it back at once
    os.umask(mask)
    return mask


def _publish_mode(tmp: Path, final: Path, *, directory: bool) -> None:
    """Give ``tmp`` the mode ``final`` has (when it exists) or a new file/folder would get."""
    try:
        mode = stat.S_IMODE(final.stat().st_mode)
    except OSError:
        mode = (0o777 if directory else 0o666) & ~current_umask()
    os.chmod(tmp, mode)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (libraries such as huggingface_hub write several), or its
    type's name when it has none: vgz's errors are one ``error: ...`` line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def describe_os_error(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """One line for an OS error: what happened and where (a full disk, a read-only location...)."""
    if exc.errno is None:  # raised with a message of its own
        return str(exc)
    where = path if path is not None else (exc.filename or "the output location")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left" if exc.errno == errno.ENOSPC else "disk quota exceeded"
        return f"{what} on the device holding {where}: free some space or write elsewhere"
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system: choose a writable location"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where} ({exc.strerror or exc})"
    return f"{where}: {exc.strerror or exc}"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    Readers never see a half-written file: either the old file or the complete new one. The file
    gets the mode of the file it replaces, or ``0666`` less the umask for a new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish_mode(tmp_path, path, directory=False)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


#: What vgz writes into a model folder (besides component subfolders and hidden temporary names).
_VGZ_FILES = ("model_index.json", "config.json", "README.md", "eval_results.json")


def _foreign_entries(folder: Path, depth: int = 0) -> list[str]:
    """Entries of ``folder`` that vgz did not write (a model folder holds vgz's files and component
    subfolders); empty for an empty folder."""
    foreign = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name.startswith("."):
            continue  # temporary names of interrupted writes
        if entry.is_dir() and not entry.is_symlink():
            if depth == 0 and (entry / "config.json").is_file():
                foreign += [f"{name}/{sub}" for sub in _foreign_entries(entry, depth + 1)]
            else:
                foreign.append(name + "/")
        elif not (name in _VGZ_FILES or (name.startswith("model") and name.endswith(".safetensors"))):
            foreign.append(name)
    return foreign


def _refuse_working_directory(path: Path) -> None:
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputFolderError(f"{path}: refusing to replace the working directory or a folder that holds it; "
                                "write to a new folder")


def check_replaceable(path: str | os.PathLike) -> None:
    """Refuse to replace ``path`` unless it is an empty folder or a folder vgz wrote.

    Raises:
        OutputFolderError: ``path`` is ``.`` or holds the working directory, is a file, or holds
            files vgz did not write (they are named).
    """
    path = Path(path)
    _refuse_working_directory(path)
    if not path.is_dir() or path.is_symlink():
        raise OutputFolderError(f"{path} exists and is not a folder; choose another output path")
    foreign = _foreign_entries(path)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputFolderError(f"{path} holds files vgz did not write ({shown}); --overwrite only replaces an "
                                "empty folder or a vgz model folder. Move them or choose another folder")


@contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; it becomes ``path`` when the block succeeds.

    An existing non-empty ``path`` is an error unless ``overwrite``; then it is replaced whole, but
    only when it is a folder vgz wrote (see :func:`check_replaceable`). The folder gets the mode of
    the one it replaces, or ``0777`` less the umask.
    """
    path = Path(path)
    if path.exists():
        _refuse_working_directory(path)
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{path} already exists; choose another folder or overwrite it")
        check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, path, directory=True)
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:  # put the previous folder back rather than leave nothing
                os.replace(old / path.name, path)
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
