"""``vgz push``: a model and its card to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail


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
    try:
        info = push_folder(folder, repo_id, commit_message=message, private=private or None, token=token,
                           revision=revision, create_pr=create_pr, card_kwargs=card_kwargs)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(f"pushed {folder} to https://huggingface.co/{repo_id}: {getattr(info, 'commit_url', info)}")
