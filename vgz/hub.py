"""Resolving a model reference (a local folder or a Hugging Face Hub repo id) to a local folder.

Nothing here downloads at import time; huggingface_hub is imported only when a repo id is used.
Offline use works from the Hub cache: set ``HF_HUB_OFFLINE=1`` or pass ``local_files_only=True``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["resolve_folder", "is_repo_id", "ModelNotFoundError"]

# "org/name" with the characters the Hub allows; no leading dot or slash (those are paths).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class ModelNotFoundError(FileNotFoundError):
    """A model reference is neither an existing folder nor a Hub repo that can be fetched."""


def is_repo_id(ref: str) -> bool:
    """True when ``ref`` has the form of a Hub repo id (``org/name``)."""
    return bool(_REPO_ID.match(ref)) and ".." not in ref


def resolve_folder(
    ref: str | os.PathLike,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
) -> Path:
    """Return the local folder holding the model that ``ref`` names.

    Args:
        ref: a local folder, or a Hub repo id ``org/name`` (local folders win when both exist).
        subfolder: a folder inside the model (e.g. one component of a pipeline).
        revision, cache_dir, local_files_only, token: passed to ``huggingface_hub``.

    Raises:
        ModelNotFoundError: with what was tried.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        folder = path / subfolder if subfolder else path
        if not folder.is_dir():
            raise ModelNotFoundError(f"{path} has no subfolder {subfolder!r}")
        return folder
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file; expected a model folder (config.json + model.safetensors)")
    ref = str(ref)
    if not is_repo_id(ref):
        raise ModelNotFoundError(f"no folder {ref!r}, and it is not a Hub repo id of the form 'org/name'")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    allow = [f"{subfolder}/*"] if subfolder else None
    try:
        snapshot = snapshot_download(
            ref,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=bool(local_files_only),
            token=token,
            allow_patterns=allow,
        )
    except LocalEntryNotFoundError as exc:
        raise ModelNotFoundError(
            f"{ref!r} is not a local folder and is not in the Hub cache"
            f"{' at revision ' + repr(revision) if revision else ''} (offline or local_files_only): {exc}"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(f"{ref!r} is not a local folder and could not be fetched from the Hub: {exc}") from exc
    folder = Path(snapshot) / subfolder if subfolder else Path(snapshot)
    if not folder.is_dir():
        raise ModelNotFoundError(f"Hub repo {ref!r} has no folder {subfolder!r}")
    return folder
