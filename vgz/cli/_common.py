"""What every ``vgz`` command shares: the error line, device selection, the writability check."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def fail(message: str) -> None:
    """Print ``error: message`` to stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; a named device is checked, so that
    ``--device cuda`` on a machine without one is an ``error:`` line, not a traceback."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        fail(f"--device {device!r}: expected auto, cpu, cuda, cuda:N or mps")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            fail(f"--device {device}: no CUDA GPU is usable here (torch {torch.__version__}, "
                 f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or auto")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            fail(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s) (cuda:0.."
                 f"cuda:{torch.cuda.device_count() - 1})")
    if parsed.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        fail(f"--device {device}: MPS is not available here; use --device cpu or auto")
    return str(parsed)


def unwritable(path: Path, *, folder: bool = False) -> str | None:
    """Why ``path`` (a file, or with ``folder`` a folder to fill) cannot be written, when that can be
    told without writing (None: it looks writable). Files are written under a temporary name in
    their folder and renamed, so the nearest existing folder on the way must be writable; a
    read-only file system says so too (also to root)."""
    path = Path(os.path.abspath(path))
    if folder and path.exists() and not path.is_dir():
        return "it is a file (expected a folder)"
    if not folder and path.is_dir():
        return "it is a folder (expected a file name)"
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the folder {existing} is not writable"
    return None
