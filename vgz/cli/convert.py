"""``vgz convert``: official checkpoints into vgz folders (their code is never run)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from vgz.cli._common import fail

convert_app = typer.Typer(help="Convert official checkpoints into vgz folders (their code is never run).",
                          no_args_is_help=True)

_OVERWRITE_HELP = "Replace an existing output folder: only an empty one or one vgz wrote, never . or its parents."


def _convert(run: Callable[[], Path], source: Path) -> None:
    """Run one conversion, turning its errors into one-line messages."""
    from vgz.conversion.pickles import UnsafePickleError

    try:
        folder = run()
    except UnsafePickleError as exc:
        fail(f"refused: {exc}")
    except (ValueError, FileExistsError) as exc:  # bad files; an existing output folder
        fail(str(exc))
    except OSError as exc:  # a missing file, a full disk, a read-only location
        from vgz.utils import describe_os_error

        fail(describe_os_error(exc))
    parts = sorted(p.name for p in folder.iterdir() if p.is_dir())
    typer.echo(f"converted {source} -> {folder} ({', '.join(parts)})")


@convert_app.command("styleganv")
def convert_styleganv_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from universome/stylegan-v."),
    out: Path = typer.Argument(..., help="Pipeline folder to write."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D (for fine-tuning)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """StyleGAN-V snapshot -> a StyleGAN-V pipeline folder (then: vgz generate OUT)."""
    from vgz.conversion.snapshots import convert_styleganv

    _convert(lambda: convert_styleganv(snapshot, out, discriminator=discriminator, overwrite=overwrite), snapshot)


@convert_app.command("stylegan2-ada")
def convert_stylegan2_ada_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from NVlabs/stylegan2-ada-pytorch."),
    out: Path = typer.Argument(..., help="Folder for the mapping/, synthesis/ (and discriminator/) components."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """StyleGAN2-ADA snapshot -> vgz component folders (load with vgz.load_component)."""
    from vgz.conversion.snapshots import convert_stylegan2_ada

    _convert(lambda: convert_stylegan2_ada(snapshot, out, discriminator=discriminator, overwrite=overwrite), snapshot)


@convert_app.command("stylegan2-rosinality")
def convert_stylegan2_rosinality_cmd(
    checkpoint: Path = typer.Argument(..., help="A .pt in rosinality's stylegan2-pytorch format: pSp, MoCoGAN-HD."),
    out: Path = typer.Argument(..., help="Folder for the mapping/ and synthesis/ components."),
    key: Optional[str] = typer.Option(None, "--key", help="The generator's entry: g_ema (default), else g, else "
                                      "the file itself; NAME.PREFIX: the keys under PREFIX. in NAME (pSp: "
                                      "state_dict.decoder)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """rosinality StyleGAN2 checkpoint -> vgz component folders (read as data: tensors and training args only)."""
    from vgz.conversion.stylegan2_rosinality import convert_rosinality

    _convert(lambda: convert_rosinality(checkpoint, out, key=key, overwrite=overwrite), checkpoint)


@convert_app.command("psp")
def convert_psp_cmd(
    checkpoint: Path = typer.Argument(..., help="A pSp checkpoint: coach.py's .pt (eladrich/pixel2style2pixel) or "
                                      "StyleInV's pSp-stage network-snapshot-*.pkl."),
    out: Path = typer.Argument(..., help="Pipeline folder to write (then: vgz invert OUT --data VIDEOS)."),
    input_size: int = typer.Option(256, "--input-size", min=16, help="Image size the encoder was trained on."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """pSp checkpoint -> a psp inversion pipeline folder: encoder, latent_avg and the generator it inverts."""
    from vgz.conversion.psp import convert_psp

    _convert(lambda: convert_psp(checkpoint, out, input_size=input_size, overwrite=overwrite), checkpoint)


@convert_app.command("styleinv")
def convert_styleinv_cmd(
    snapshot: Path = typer.Argument(..., help="network-snapshot-*.pkl from johannwyh/StyleInV's training "
                                    "(SI_ema, else SI; its frozen G)."),
    out: Path = typer.Argument(..., help="Pipeline folder to write (then: vgz generate OUT)."),
    discriminator: bool = typer.Option(False, "--discriminator", help="Also convert D (for fine-tuning)."),
    psp: Optional[Path] = typer.Option(None, "--psp", help="The pSp stage's pickle ({'pSp', 'G'}): its W encoder "
                                       "becomes the pipeline's inversion_encoder, for vgz generate --image."),
    overwrite: bool = typer.Option(False, "--overwrite", help=_OVERWRITE_HELP),
) -> None:
    """StyleInV snapshot -> a StyleInV pipeline folder (frozen StyleGAN2, temporal style, modulated encoder)."""
    from vgz.conversion.styleinv import convert_styleinv

    _convert(lambda: convert_styleinv(snapshot, out, discriminator=discriminator, psp=psp, overwrite=overwrite),
             snapshot)
