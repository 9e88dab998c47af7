"""The ``vgz`` command line: the app and its commands, one module per group.

Commands import torch and the networks only when they run, so ``vgz --help`` stays fast.
"""

from __future__ import annotations

import typer

from vgz._version import __version__
from vgz.cli import convert, evaluate, generate, hub, info, invert, train

app = typer.Typer(
    name="vgz",
    help="vgz: a video GAN zoo for PyTorch. Generate, train, evaluate, convert, invert and share video GANs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"vgz {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the vgz version and exit."),
) -> None:
    """vgz: a video GAN zoo for PyTorch."""


app.command("list")(info.list_cmd)
app.command("info")(info.info_cmd)
app.add_typer(convert.convert_app, name="convert")
app.command("generate")(generate.generate_cmd)
app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train.train_cmd)
app.command("eval")(evaluate.eval_cmd)
app.command("invert")(invert.invert_cmd)
app.command("push")(hub.push_cmd)

# Kept importable from here (tests and scripts use them).
parse_seeds, parse_overrides = generate.parse_seeds, train.parse_overrides


#: Help width when stdout is not a terminal (`vgz generate --help | less`): rich would otherwise
#: assume 80 columns and cut option help to a narrow column.
PIPED_HELP_WIDTH = 120


def main() -> None:
    import os
    import sys

    if not os.environ.get("COLUMNS") and not os.environ.get("TERMINAL_WIDTH") and not sys.stdout.isatty():
        os.environ["COLUMNS"] = str(PIPED_HELP_WIDTH)  # rich reads it when typer builds its console
    app()


if __name__ == "__main__":
    main()
