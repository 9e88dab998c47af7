"""Resolving a model reference (a local folder or a Hugging Face Hub repo id) to a local folder.

Nothing here downloads at import time; huggingface_hub is imported only when a repo id is used.
Offline use works from the Hub cache: set ``HF_HUB_OFFLINE=1`` or pass ``local_files_only=True``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["resolve_folder", "is_repo_id", "ModelNotFoundError", "push_folder", "save_and_push", "model_folder",
           "builtin_model", "builtin_models", "BUILTIN_MODEL", "BUILTIN_MODELS"]

#: The model ``vgz generate`` uses when given none: a StyleGAN-V that vgz trained on synthetic:shapes,
#: shipped in the package (``vgz/assets/``; its README.md says how it was trained).
BUILTIN_MODEL = "shapes64"
#: The models that ship inside vgz (``vgz generate --model NAME``), by name: their folders under
#: ``vgz/assets``. The first is ``vgz generate``'s default. All are trained by vgz on ``synthetic:shapes``.
BUILTIN_MODELS = {"styleganv": BUILTIN_MODEL, "styleinv": "styleinv-shapes64", "stylevideogan": "stylevideogan-shapes64"}

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

    from vgz.utils import one_line
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
            f"{' at revision ' + repr(revision) if revision else ''} (offline or local_files_only): {one_line(exc)}"
        ) from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(f"{ref!r} is not a local folder and could not be fetched from the Hub: "
                                 f"{one_line(exc)}") from exc
    folder = Path(snapshot) / subfolder if subfolder else Path(snapshot)
    if not folder.is_dir():
        raise ModelNotFoundError(f"Hub repo {ref!r} has no folder {subfolder!r}")
    return folder


# --------------------------------------------------------------------------------- pushing

#: Files of a model folder that are not uploaded (temporary files of interrupted writes).
_SKIP_PREFIXES = (".",)


def model_folder(path: str | os.PathLike) -> Path:
    """The pipeline or component folder ``path`` names: itself, or a run folder's ``pipeline/``.

    Raises:
        ModelNotFoundError: nothing loadable; for a training run folder that has no ``pipeline/``
            yet (it is exported with the first checkpoint), the message says so.
    """
    path = Path(path).expanduser()
    if (path / "model_index.json").is_file():
        return path
    if (path / "pipeline" / "model_index.json").is_file():
        return path / "pipeline"
    if (path / "config.json").is_file():
        import json

        try:  # a `vgz train` run's settings, or a component's config?
            record = json.loads((path / "config.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            record = None
        if not (isinstance(record, dict) and {"recipe", "recipe_config", "run"} <= set(record)):
            return path
        raise ModelNotFoundError(f"{path} is a training run folder with no exported pipeline yet: it has no checkpoint "
                                 "(vgz train writes pipeline/ with each checkpoint, every --checkpoint-every steps); "
                                 f"train it further (vgz train --outdir {path} --resume) or lower --checkpoint-every")
    raise ModelNotFoundError(f"{path}: expected a saved pipeline (model_index.json), a component (config.json) or "
                             "a training run folder (pipeline/model_index.json), found none")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    card_kwargs: dict | None = None,
):
    """Upload a saved model folder to the Hub repo ``repo_id`` in one commit: weights, configs and a
    model card (``README.md``: ``library_name: vgz``, tags, eval results as ``model-index``).

    The folder's own card is used when it has one (``vgz eval`` writes it), with its usage lines
    pointed at ``repo_id``; otherwise a card is made from the template. The folder itself is not
    modified. Returns huggingface_hub's ``CommitInfo``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    from vgz.cards import card_for_push

    folder = Path(folder)
    if not is_repo_id(repo_id):
        raise ValueError(f"expected a Hub repo id of the form 'org/name', found {repo_id!r}")
    if not ((folder / "model_index.json").is_file() or (folder / "config.json").is_file()):
        raise ModelNotFoundError(f"{folder}: expected a saved vgz model (model_index.json or config.json)")
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(_SKIP_PREFIXES) for part in p.relative_to(folder).parts))
    card = card_for_push(folder, repo_id, **(card_kwargs or {}))
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                  for p in files if p.relative_to(folder).as_posix() != "README.md"]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.create_commit(repo_id, operations, commit_message=commit_message or f"Upload {folder.name} with vgz",
                             revision=revision, create_pr=create_pr, repo_type="model")


def save_and_push(model, repo_id: str, *, variant: str | None = None, **push_kwargs):
    """``model.save_pretrained`` into a temporary folder, then :func:`push_folder` it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save_pretrained(Path(tmp) / repo_id.split("/")[-1], variant=variant)
        return push_folder(folder, repo_id, **push_kwargs)


def builtin_model(name: str | None = None) -> Path:
    """The folder of a built-in model: ``name`` one of :data:`BUILTIN_MODELS` (``styleganv``,
    ``styleinv``, ``stylevideogan``), or None for the default (``$VGZ_DEFAULT_MODEL`` replaces that one,
    e.g. in tests).

    Raises:
        ModelNotFoundError: an unknown name, or a model this installation does not have.
    """
    override = os.environ.get("VGZ_DEFAULT_MODEL")
    if override and name is None:
        return Path(override)
    if name is not None and name not in BUILTIN_MODELS:
        raise ModelNotFoundError(f"no built-in model {name!r}; the built-in models are {', '.join(BUILTIN_MODELS)}")
    from importlib import resources

    asset = BUILTIN_MODELS[name] if name is not None else BUILTIN_MODEL
    folder = Path(str(resources.files("vgz") / "assets" / asset))
    if not (folder / "model_index.json").is_file():
        which = f"built-in model {name!r}" if name else "the built-in model"
        raise ModelNotFoundError(f"{which} is missing from this installation ({folder}); pass a model folder or a "
                                 "Hub repo id")
    return folder


def builtin_models() -> dict[str, Path]:
    """The built-in models this installation has, by name (see :data:`BUILTIN_MODELS`)."""
    found = {}
    for name in BUILTIN_MODELS:
        try:
            found[name] = builtin_model(name)
        except ModelNotFoundError:
            pass
    return found
