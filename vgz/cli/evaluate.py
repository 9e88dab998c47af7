"""``vgz eval``: FVD and FID of a model or of generated videos against real ones."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail, resolve_device


def eval_cmd(
    model: str = typer.Argument(..., help="A pipeline folder, a Hub repo id, a run folder (its pipeline/), or a "
                                          "folder of generated videos."),
    data: str = typer.Option(..., "--data", "-d", help="The real videos: a folder, a .zip of frame folders, or "
                                                      "synthetic:shapes?..."),
    metrics: str = typer.Option("fvd16", "--metrics", "-m", help="Comma-separated: fvd16, fvd128, "
                                                                 "fvd128_subsample8, fid (vgz list metric)."),
    detector: list[str] = typer.Option([], "--detector", help="Feature detector file, folder or Hub repo id; give "
                                       "one video detector (I3D) for FVD and one image detector (Inception) for FID."),
    num_videos: Optional[int] = typer.Option(None, "--num-videos", min=1, help="At most this many real and "
                                             "generated videos per metric (quick; not comparable to papers)."),
    seed: int = typer.Option(0, help="Seed of the generated samples."),
    resolution: Optional[int] = typer.Option(None, help="Evaluation resolution (default: the model's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The JSON result (default: eval_results.json in "
                                                                "the model folder, or here)."),
    card: bool = typer.Option(True, "--card/--no-card", help="Write the results into the model folder's README.md."),
    bn_eps: Optional[float] = typer.Option(None, "--bn-eps", help="Batch-norm epsilon of a state-dict I3D: 1e-5 "
                                           "(the port, default) or 1e-3 (TF-Hub's original)."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse cached real-data statistics."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where real statistics are cached (default ~/.cache/vgz/metrics)."),
    num_workers: int = typer.Option(2, min=0, help="Processes decoding real videos."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Hub revision of the model (branch, tag or commit)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate a model (or generated videos) against real videos: FVD16, FVD128, FID with StyleGAN-V's protocol."""
    import contextlib


    from vgz.data.datasets import DatasetError
    from vgz.hub import ModelNotFoundError, model_folder
    from vgz.metrics.detectors import DetectorError
    from vgz.metrics.evaluation import EvaluationError, evaluate
    from vgz.registry import UnknownComponentError

    folder = Path(model).expanduser()
    if folder.is_dir():
        with contextlib.suppress(ModelNotFoundError):  # else a folder of generated videos
            folder = model_folder(folder)  # a run folder: its EMA pipeline
            model = str(folder)
    local_model = (folder / "model_index.json").is_file()
    device = resolve_device(device)
    try:
        report = evaluate(model, data, [m.strip() for m in metrics.split(",") if m.strip()], detectors=detector,
                          num_videos=num_videos, seed=seed, resolution=resolution, device=device,
                          num_workers=num_workers, cache_dir=(cache_dir if cache else False), progress=not quiet,
                          bn_eps=bn_eps, truncation_psi=truncation_psi, hub_kwargs={"revision": revision})
    except (EvaluationError, DetectorError, DatasetError, ModelNotFoundError, UnknownComponentError,
            FileNotFoundError) as exc:
        fail(str(exc))
    out = out or ((folder if local_model else Path(".")) / "eval_results.json")
    report.save(out)
    for name, value in report.results.items():
        proto = report.protocols[name]
        det = proto["detector"]
        typer.echo(f"{name}: {value:.4f}  ({proto['real_taken']['items']} real / {proto['fake_taken']['items']} "
                   f"generated, {proto['resolution']}px, detector {det['name']} sha256 {str(det['sha256'])[:12]}, "
                   f"seed {seed})")
    typer.echo(f"wrote {out}")
    if card and local_model:
        from vgz.cards import write_eval_results

        typer.echo(f"wrote {write_eval_results(folder, report)}")
