"""What every ``vgz`` command shares: the error line and device selection."""

from __future__ import annotations

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
