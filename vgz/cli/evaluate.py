"""``vgz eval``: FVD and FID of a model or of generated videos against real ones.

Where the results go (``--out``, and the model card unless ``--no-card``) is checked before the
evaluation starts: a folder that cannot be written is an error at once, not after hours. Should a
write still fail at the end, the results have been printed already; the error line comes last and
the exit status is 1 (what was asked, the files, was not done).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vgz.cli._common import fail, resolve_device, unwritable
from vgz.utils import describe_os_error


def eval_cmd(
    model: Optional[str] = typer.Argument(None, help="A pipeline folder, a Hub repo id, a run folder (its "
                                                     "pipeline/), or a folder of generated videos."),
    builtin: Optional[str] = typer.Option(None, "--model", help="A built-in model instead (vgz list model): "
                                          "styleganv, styleinv, stylevideogan. Its card is left as shipped unless "
                                          "--card is given."),
    data: str = typer.Option(..., "--data", "-d", help="The real videos: a folder, a .zip of frame folders, "
                                                      "synthetic:shapes?..., or a latent folder from vgz invert "
                                                      "(rendered by the model's StyleGAN2)."),
    metrics: str = typer.Option("fvd16", "--metrics", "-m", help="Comma-separated: fvd16, fvd128, "
                                                                 "fvd128_subsample8, fid (StyleGAN-V's protocol); "
                                                                 "fvd_short, fvd_long, fid_short, fid_long "
                                                                 "(StyleVideoGAN's) (vgz list metric)."),
    detector: list[str] = typer.Option([], "--detector", help="Feature detector file, folder or Hub repo id; give "
                                       "one video detector (I3D) for FVD and one image detector (Inception) for FID."),
    num_videos: Optional[int] = typer.Option(None, "--num-videos", min=1, help="At most this many real and "
                                             "generated videos per metric (quick; not comparable to papers)."),
    seed: int = typer.Option(0, help="Seed of the generated samples (with --offsets official, also the torch seed "
                                     "of the real clip offsets)."),
    resolution: Optional[int] = typer.Option(None, help="Evaluation resolution (default: the model's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The JSON result (default: eval_results.json in "
                                                                "the model folder; here for generated videos and "
                                                                "built-in models)."),
    card: Optional[bool] = typer.Option(None, "--card/--no-card", help="Write the results into the model folder's "
                                        "README.md (default: yes, except for a built-in model)."),
    bn_eps: Optional[float] = typer.Option(None, "--bn-eps", help="Batch-norm epsilon of a state-dict I3D: 1e-5 "
                                           "(the port, default) or 1e-3 (TF-Hub's original)."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse cached real-data statistics."),
    cache_dir: Optional[Path] = typer.Option(None, help="Where real statistics are cached (default ~/.cache/vgz/metrics)."),
    num_workers: Optional[int] = typer.Option(None, min=0, help="Processes decoding real videos (default 2; with "
                                              "--offsets official, also the DataLoader workers whose draws are "
                                              "reproduced: default 3, the official code's)."),
    offsets: str = typer.Option("seeded", help="Real FVD clip offsets: seeded (vgz: per video, reproducible) or "
                                               "official (drawn as StyleGAN-V's code draws them for torch seed "
                                               "--seed and --num-workers workers)."),
    order: Optional[str] = typer.Option(None, help="Order of videos and frames in folders: natural (2.png before "
                                                   "10.png; default) or plain (Python's sorted(), StyleGAN-V's; "
                                                   "default with --offsets official)."),
    resolution_rule: str = typer.Option("model", "--resolution-rule", help="model: real frames (and generated "
                                        "folders) resized to the evaluation resolution; native: each set at its "
                                        "own size into the detector's resize, as StyleGAN-V's code does."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    revision: Optional[str] = typer.Option(None, help="Hub revision of the model (branch, tag or commit)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Videos generated per model call "
                                             "(default: the protocol's, 8 clips for FVD16, 2 videos for FID). "
                                             "Changes the memory used, not the results."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate a model (or generated videos) against real videos: FVD16, FVD128, FID with StyleGAN-V's protocol."""
    import contextlib

    from vgz.cards import card_path
    from vgz.data.datasets import DatasetError
    from vgz.hub import ModelNotFoundError, builtin_model, model_folder
    from vgz.metrics.detectors import DetectorError
    from vgz.metrics.evaluation import EvaluationError, evaluate
    from vgz.registry import UnknownComponentError

    if (model is None) == (builtin is None):
        fail("give a MODEL or --model NAME (a built-in model), one of them" if model is None else
             f"give a MODEL ({model}) or --model {builtin}, not both")
    if builtin is not None:
        try:
            model = str(builtin_model(builtin))
        except ModelNotFoundError as exc:
            fail(str(exc))
        card = bool(card)  # the shipped card changes only when asked
    folder = Path(model).expanduser()
    if folder.is_dir():
        with contextlib.suppress(ModelNotFoundError):  # else a folder of generated videos
            folder = model_folder(folder)  # a run folder: its EMA pipeline
            model = str(folder)
    local_model = (folder / "model_index.json").is_file()
    device = resolve_device(device)
    out = out or ((folder if local_model and builtin is None else Path(".")) / "eval_results.json")
    write_card = (card is None or card) and local_model
    # Told now, not after the evaluation: a result that cannot be saved is hours lost.
    problems = []
    reason = unwritable(out)
    if reason:
        problems.append(f"cannot write {out}: {reason}; pass --out FILE in a writable folder")
    reason = unwritable(card_path(folder)) if write_card else None
    if reason:
        problems.append(f"cannot write the model card {card_path(folder)}: {reason}; pass --no-card")
    if problems:
        fail("; ".join(problems) + " (nothing was evaluated)")
    try:
        report = evaluate(model, data, [m.strip() for m in metrics.split(",") if m.strip()], detectors=detector,
                          num_videos=num_videos, seed=seed, resolution=resolution, device=device,
                          num_workers=num_workers, cache_dir=(cache_dir if cache else False), progress=not quiet,
                          bn_eps=bn_eps, truncation_psi=truncation_psi, hub_kwargs={"revision": revision},
                          batch_size=batch_size, offsets=offsets, order=order, resolution_rule=resolution_rule)
    except (EvaluationError, DetectorError, DatasetError, ModelNotFoundError, UnknownComponentError,
            FileNotFoundError) as exc:
        fail(str(exc))
    # The values first: whatever happens to the files below, they are not lost.
    for name, value in report.results.items():
        proto = report.protocols[name]
        det = proto["detector"]
        typer.echo(f"{name}: {value:.4f}  ({proto['real_taken']['items']} real / {proto['fake_taken']['items']} "
                   f"generated, {proto['resolution']}px, detector {det['name']} sha256 {str(det['sha256'])[:12]}, "
                   f"seed {seed}; offsets {proto['offsets']}, order {proto['order']}, resolution rule "
                   f"{proto['resolution_rule']}{'' if proto['comparable'] else '; not comparable'})")
    errors = []
    try:
        typer.echo(f"wrote {report.save(out)}")
    except OSError as exc:
        errors.append(f"{describe_os_error(exc, out)}; pass --out FILE to save the results elsewhere")
    if write_card:
        from vgz.cards import write_eval_results

        try:
            typer.echo(f"wrote {write_eval_results(folder, report)}")
        except OSError as exc:
            errors.append(f"{describe_os_error(exc, card_path(folder))}; pass --no-card to skip the model card")
    if errors:
        fail("; ".join(errors) + " (the results printed above were computed)")
