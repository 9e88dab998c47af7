"""``vgz convert``: official checkpoints into vgz folders (their code is never run)."""

from __future__ import annotations

from pathlib import Path

import typer

from vgz.cli._common import fail

convert_app = typer.Typer(help="Convert official checkpoints into vgz folders (their code is never run).",
                          no_args_is_help=True)

_OVERWRITE_HELP = "Replace an existing output folder: only an empty one or one vgz wrote, never . or its parents."


def _convert(kind: str, snapshot: Path, out: Path, discriminator: bool, overwrite: bool) -> None:
    from vgz.conversion import snapshots
    from vgz.conversion.pickles import UnsafePickleError

    convert = snapshots.convert_styleganv if kind == "styleganv" else snapshots.convert_stylegan2_ada
    try:
        folder = convert(snapshot, out, discriminator=discriminator, overwrite=overwrite)
    except UnsafePickleError as exc:
        fail(f"refused: {exc}")
    except (ValueError, FileExistsError) as exc:  # bad files; an existing output folder
        fail(str(exc))
    except OSError as exc:  # a missing file, a full disk, a read-only location
        from vgz.utils import describe_os_error

        fail(describe_os_error(exc))
    parts = sorted(p.name for p in folder.iterdir() if p.is_dir())
    typer.echo(f"converted {snapshot} -> {folder} ({', '.join(parts)})")


@convert_app.command("styleganv")
def convert_styleganv_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from universome/stylegan-v."),
    out: Path = typer.Argument(..., help="Pipeline folder to write."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D (for fine-tuning)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """StyleGAN-V snapshot -> a StyleGAN-V pipeline folder (then: vgz generate OUT)."""
    _convert("styleganv", snapshot, out, discriminator, overwrite)


@convert_app.command("stylegan2-ada")
def convert_stylegan2_ada_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from NVlabs/stylegan2-ada-pytorch."),
    out: Path = typer.Argument(..., help="Folder for the mapping/, synthesis/ (and discriminator/) components."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """StyleGAN2-ADA snapshot -> vgz component folders (load with vgz.load_component)."""
    _convert("stylegan2-ada", snapshot, out, discriminator, overwrite)
