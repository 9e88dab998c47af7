"""``vgz push``: a model and its card to the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail
from vgz.utils import one_line


def push_cmd(
    model: Path = typer.Argument(..., help="A saved pipeline or component folder, or a training run folder (its "
                                           "pipeline/ is pushed)."),
    repo_id: str = typer.Argument(..., help="The Hub repo, org/name (created if missing)."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Commit message."),
    private: bool = typer.Option(False, "--private", help="Create the repo private."),
    revision: Optional[str] = typer.Option(None, help="Branch to commit to."),
    create_pr: bool = typer.Option(False, "--create-pr", help="Open a pull request instead of committing."),
    token: Optional[str] = typer.Option(None, help="Hub token (default: the saved login or HF_TOKEN)."),
) -> None:
    """Upload a model to the Hugging Face Hub in one commit: weights, configs and its model card."""
    from vgz.cards import training_text
    from vgz.hub import ModelNotFoundError, model_folder, push_folder

    try:
        folder = model_folder(model)
    except ModelNotFoundError as exc:
        fail(str(exc))
    card_kwargs = {"training": training_text(model)} if folder != model.expanduser() else {}
    unreachable, refused = _hub_errors()
    try:
        info = push_folder(folder, repo_id, commit_message=message, private=private or None, token=token,
                           revision=revision, create_pr=create_pr, card_kwargs=card_kwargs)
    except refused as exc:  # the Hub answered, with an error status
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = " (check the token: `hf auth login`, HF_TOKEN or --token)" if status in (401, 403) else ""
        fail(f"the Hugging Face Hub refused to push {folder} to {repo_id}: {one_line(exc)}{hint}")
    except unreachable as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")
        hint = ("HF_HUB_OFFLINE is set, which keeps huggingface_hub offline: unset it to push" if offline else
                "check the network connection, or whether HF_HUB_OFFLINE or HF_ENDPOINT is set")
        fail(f"could not reach the Hugging Face Hub to push {folder} to {repo_id} ({one_line(exc)}); {hint}")
    except (ValueError, OSError) as exc:
        fail(one_line(exc))
    typer.echo(f"pushed {folder} to https://huggingface.co/{repo_id}: {getattr(info, 'commit_url', info)}")


def _hub_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """``(unreachable, refused)`` exception classes: no answer from the Hub (offline mode, DNS,
    refused connections, timeouts), and an answer with an error status (``HfHubHTTPError``)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    # Connection failures are errors of the HTTP client huggingface_hub uses (requests, httpx or httpx2,
    # by version), not all of them OSErrors: catch that client's base error, found through HfHubHTTPError.
    client = [c for c in HfHubHTTPError.__mro__[1:]
              if c.__module__.split(".")[0] in ("requests", "httpx", "httpx2") and issubclass(c, Exception)]
    return (OfflineModeIsEnabled, ConnectionError, TimeoutError, *client[-1:]), (HfHubHTTPError,)
