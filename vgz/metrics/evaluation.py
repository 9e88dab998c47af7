"""``evaluate``: a model (or a folder of generated videos) against a dataset, by registered metrics.

    from vgz.metrics import evaluate

    report = evaluate("runs/shapes/pipeline", data="synthetic:shapes", metrics=["fvd16", "fid"],
                      detectors=["i3d_torchscript.pt", "pt_inception-2015-12-05-6726825d.pth"])
    report.results            # {"fvd16": 123.4, "fid": 56.7}
    report.save("eval.json")  # values, and the protocol of each (clips, frames, detector hash, ...)

Real-data statistics are cached (``~/.cache/vgz/metrics`` or ``$VGZ_CACHE/metrics``) in a file
keyed by the dataset's content, the real side of the protocol and the detector's weights
(:func:`~vgz.metrics.features.weights_sha256`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vgz.metrics.detectors import load_detector
from vgz.metrics.features import FeatureDetector, check_detector
from vgz.metrics.frechet import MIN_RECOMMENDED_SAMPLES, FeatureStats, FewSamplesWarning, frechet_distance_from_stats
from vgz.metrics.protocol import ALIASES, Metric, Samples, create_metric, rebatch

__all__ = ["evaluate", "EvalReport", "default_cache_dir", "EvaluationError"]

REPORT_FORMAT = "vgz-eval/1"


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (a missing detector, a model that cannot make the samples...)."""


def default_cache_dir() -> Path:
    """Where real-data statistics are cached: ``$VGZ_CACHE/metrics``, else ``~/.cache/vgz/metrics``."""
    root = os.environ.get("VGZ_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "vgz")
    return Path(root).expanduser() / "metrics"


@dataclass
class EvalReport:
    """What :func:`evaluate` found: values, the protocol of each, and the run's context (JSON-safe)."""

    results: dict[str, float]
    protocols: dict[str, dict[str, Any]]
    model: str
    data: str
    seed: int
    dataset: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    format: str = REPORT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON (under a temporary name, then renamed)."""
        from vgz.utils import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EvalReport":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: expected a vgz evaluation JSON, could not read it: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
            raise ValueError(f"{path}: expected a vgz evaluation JSON (format {REPORT_FORMAT!r}), "
                             f"found format {data.get('format') if isinstance(data, dict) else type(data).__name__!r}")
        return cls(**data)


# --------------------------------------------------------------------------------- helpers


def _is_model_ref(ref: Any) -> bool:
    """A pipeline (object, folder with model_index.json, or Hub repo id) rather than a folder of videos."""
    from vgz.hub import is_repo_id

    if not isinstance(ref, (str, os.PathLike)):
        return True
    path = Path(ref).expanduser()
    if path.is_dir():
        return (path / "model_index.json").is_file()
    return not path.exists() and is_repo_id(str(ref))


def _pipeline_resolution(pipe: Any) -> int:
    synthesis = pipe.components.get("synthesis")
    if synthesis is None or not hasattr(synthesis.config, "img_resolution"):
        raise EvaluationError(f"{type(pipe).__name__}: cannot tell its output resolution (no synthesis component "
                              "with img_resolution); pass resolution=")
    return int(synthesis.config.img_resolution)


def _native_resolution(dataset: Any) -> int:
    frame = dataset._decode(0, np.array([0]))[0]  # the file's own size, before any resize
    height, width = frame.shape[:2]
    if height != width:
        raise EvaluationError(f"{dataset.video_paths[0]}: frames are {width}x{height}; pass resolution= (frames "
                              "are centre-cropped and resized to it)")
    return int(height)


def _open(spec: Any, resolution: int, what: str, render: Any = None, order: str = "natural",
          native: bool = False) -> Any:
    """The dataset ``spec`` at ``resolution`` (``native``: at its frames' own size), its videos and
    frames in ``order``; a latent folder (``vgz invert``) is rendered by ``render`` (the model's
    StyleGAN2 synthesis), the "W+ embedding rendered" reference of StyleVideoGAN's protocol."""
    from vgz.data.datasets import DatasetError, VideoDataset, open_dataset
    from vgz.data.latents import is_latent_folder
    from vgz.data.sampling import ClipSamplingConfig

    if isinstance(spec, (str, os.PathLike)) and is_latent_folder(spec):
        if render is None or not hasattr(render, "img_resolution"):
            raise EvaluationError(f"{what} {spec} is a latent folder: its W+ latents are rendered by the model's "
                                  "StyleGAN2 synthesis, so the model must be a pipeline with one")
        try:
            spec = open_dataset(spec, sampling=ClipSamplingConfig.from_preset("image")).rendered(render)
        except DatasetError as exc:
            raise EvaluationError(f"{what}: {exc}") from exc
    if isinstance(spec, VideoDataset):
        if spec.resolution != resolution and not native:
            raise EvaluationError(f"{what} dataset is at resolution {spec.resolution}, the model makes {resolution}")
        return spec
    try:
        # Any clip length: the metrics pick the videos long enough for their clips themselves.
        dataset = open_dataset(spec, resolution=resolution, sampling=ClipSamplingConfig.from_preset("image"),
                               order=order)
    except DatasetError as exc:
        raise EvaluationError(f"{what}: {exc}") from exc
    if native and not getattr(dataset, "renders_in_process", False) and not str(spec).startswith("synthetic:"):
        dataset = dataset.at_resolution(_native_resolution(dataset))
    return dataset


def _stats_cache_key(metric: Metric, dataset: Any, detector: FeatureDetector) -> str | None:
    if detector.sha256 is None:  # not from a file (random weights in tests): not cached
        return None
    real = {k: v for k, v in metric.protocol().items() if k not in ("num_fake", "fake")}
    # Keyed on the weights, not the file: the same network exported again is another file.
    key = {"real": real, "dataset": dataset.fingerprint(), "resolution": dataset.resolution,
           "detector": detector.weights_sha256 or detector.sha256, "detector_settings": detector.settings,
           "format": 2}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _accumulate(samples: Samples, detector: FeatureDetector, device: torch.device, desc: str,
                progress: bool, batch_size: int) -> FeatureStats:
    """Features of ``samples`` in detector batches of ``batch_size`` (see :func:`rebatch`); only the
    statistics are kept, so memory does not grow with the number of samples."""
    from tqdm.auto import tqdm

    stats = FeatureStats()
    with tqdm(total=samples.total, desc=desc, unit="clip" if detector.kind == "video" else "frame",
              disable=not progress, leave=False) as bar, torch.no_grad():
        for batch in rebatch(iter(samples), batch_size):
            stats.append(detector(batch.to(device)))
            bar.update(len(batch))
    if stats.num_items == 0:
        raise EvaluationError(f"{desc}: no samples (every video too short or unreadable: {samples.info})")
    return stats


def _real_stats(metric: Metric, dataset: Any, detector: FeatureDetector, device: torch.device, *, cache_dir: Path | None,
                num_workers: int, progress: bool) -> tuple[FeatureStats, dict[str, Any]]:
    key = _stats_cache_key(metric, dataset, detector) if cache_dir is not None else None
    path = cache_dir / f"{metric.name}-{key[:32]}.npz" if key else None
    if path is not None and path.is_file():
        try:
            stats = FeatureStats.load(path)
            info_path = path.with_suffix(".json")
            info = json.loads(info_path.read_text()) if info_path.is_file() else {}
            return stats, {**info, "cached": str(path)}
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            warnings.warn(f"{path}: unreadable cached statistics, computing them again ({exc})", stacklevel=2)
    samples = metric.real_samples(dataset, num_workers=num_workers)
    stats = _accumulate(samples, detector, device, f"{metric.name} real", progress, metric.detector_batch_size)
    info = {**samples.info, "items": stats.num_items}
    if path is not None:
        from vgz.utils import atomic_write_text

        stats.save(path)
        atomic_write_text(path.with_suffix(".json"), json.dumps(info) + "\n")
    return stats, {**info, "cached": None}


def _load_detectors(detectors: Sequence[Any] | None, device: torch.device, bn_eps: float | None,
                    hub_kwargs: dict[str, Any]) -> dict[str, FeatureDetector]:
    found: dict[str, FeatureDetector] = {}
    for ref in detectors or ():
        det = ref if isinstance(ref, FeatureDetector) else load_detector(ref, bn_eps=bn_eps, **hub_kwargs)
        if det.kind in found:
            raise EvaluationError(f"two {det.kind} detectors given ({found[det.kind].source or found[det.kind].name} "
                                  f"and {det.source or det.name}); pass one per kind")
        found[det.kind] = det.eval().requires_grad_(False).to(device)
    return found


#: Detector files already found sound in this process (a session evaluating many checkpoints
#: with one detector runs the check once).
_CHECKED: set[str] = set()


def _check_detector_once(detector: FeatureDetector, resolution: int, num_frames: int, device: torch.device) -> None:
    key = None
    if detector.sha256 is not None:  # random weights (no file) are checked every time
        key = json.dumps([detector.sha256, detector.kind, detector.settings, resolution, num_frames, str(device)],
                         sort_keys=True, default=str)
        if key in _CHECKED:
            return
    check_detector(detector, resolution=resolution, num_frames=num_frames, device=device)
    if key is not None:
        _CHECKED.add(key)


_MISSING_DETECTOR = {
    "video": "a video detector (I3D): StyleGAN-V's i3d_torchscript.pt "
             "(https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt) or the Kinetics-400 "
             "i3d_pretrained_400.pt of VideoGPT/TATS, as a file, a folder or a Hub repo id",
    "image": "an image detector (Inception): pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
             "(https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth) "
             "or StyleGAN2-ADA's TorchScript inception-2015-12-05.pt",
}


@contextlib.contextmanager
def full_float32():
    """No TF32 in matmuls and convolutions while inside, as StyleGAN-V's calc_metrics.py sets
    (TF32 on Ampere+ GPUs would change the features in their fourth digit)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _check_sample_counts(metric: Metric, dataset: Any, what: str, *, real: bool) -> bool:
    """Before anything is decoded or generated: fail when ``dataset`` has no video long enough for
    ``metric``, warn (:class:`FewSamplesWarning`) when it gives fewer samples than the protocol asks
    for. Returns whether it warned."""
    taken, wanted = metric.available(dataset, real=real)
    lengths = dataset.video_lengths
    need = metric.min_video_len
    if taken == 0:
        raise EvaluationError(f"{metric.name}: {what} {dataset.config.path}: expected videos of at least {need} "
                              f"frames (the metric's clip length), found none among its {dataset.num_videos} "
                              f"videos (shortest {min(lengths)} frames, longest {max(lengths)}); use longer videos "
                              "or a metric with shorter clips (fvd16)")
    if taken >= wanted:
        return False
    unit = "clips" if metric.detector_kind == "video" else "frames"
    short = sum(1 for n in lengths if n < need)
    why = f" ({short} of its {dataset.num_videos} videos are shorter than {need} frames)" if short else ""
    note = (f"; with fewer than {MIN_RECOMMENDED_SAMPLES} the value is not comparable to published ones"
            if taken < MIN_RECOMMENDED_SAMPLES else "")
    warnings.warn(f"{metric.name}: {what} {dataset.config.path} gives {taken} {unit}, the protocol takes "
                  f"{wanted}{why}{note}", FewSamplesWarning, stacklevel=3)
    return True


def _run_metric(metric: Metric, detector: FeatureDetector, dataset: Any, pipe: Any, fake_dataset: Any,
                device: torch.device, cache: Path | None, num_workers: int, progress: bool, seed: int, labels: Any,
                call_kwargs: dict[str, Any], resolution: int, comparable: bool, batch_size: int | None,
                warned: bool, rules: dict[str, Any]) -> tuple[float, dict[str, Any], float]:
    """One metric: real statistics (cached), generated statistics, the distance and its record."""
    t0 = time.time()
    real, real_info = _real_stats(metric, dataset, detector, device, cache_dir=cache, num_workers=num_workers,
                                  progress=progress)
    if pipe is not None:
        samples = metric.fake_samples(pipe, seed=seed, labels=labels, batch_size=batch_size, **call_kwargs)
    else:
        samples = metric.fake_samples_from_dataset(fake_dataset, num_workers=num_workers)
    fake = _accumulate(samples, detector, device, f"{metric.name} generated", progress, metric.detector_batch_size)
    short = samples.info.get("videos_too_short", 0) if fake_dataset is not None else 0
    if short:
        warnings.warn(f"{metric.name}: {short} of the {fake_dataset.num_videos} generated videos in "
                      f"{fake_dataset.config.path} are shorter than {metric.min_video_len} frames and were skipped "
                      "(StyleGAN-V's code stops with an assertion on them)", FewSamplesWarning, stacklevel=3)
    with warnings.catch_warnings():
        if warned:  # the few samples were reported before the evaluation started
            warnings.simplefilter("ignore", FewSamplesWarning)
        value = frechet_distance_from_stats(real, fake, name=metric.name)
    why = [] if comparable else ["--num-videos limits the samples"]
    why += _short_of_protocol(metric, real.num_items, fake.num_items)
    protocol = {**metric.protocol(), "resolution": resolution, **rules, "detector": detector.describe(),
                "tf32": False, "real_taken": real_info, "fake_taken": {**samples.info, "items": fake.num_items},
                "comparable": not why, **({"not_comparable": why} if why else {})}
    return value, protocol, round(time.time() - t0, 3)


def _short_of_protocol(metric: Metric, real_items: int, fake_items: int) -> list[str]:
    """Why the samples taken fall short of what ``metric``'s protocol takes (empty: they do not)."""
    cfg = metric.config
    why = []
    num_real = getattr(cfg, "num_real", None)  # None: FID's "every real frame"
    if num_real is not None and real_items < num_real:
        why.append(f"{real_items} real {'frames' if metric.detector_kind == 'image' else 'clips'}, the protocol "
                   f"takes {num_real}")
    if fake_items < cfg.num_fake:
        why.append(f"{fake_items} generated {'frames' if metric.detector_kind == 'image' else 'clips'}, the protocol "
                   f"takes {cfg.num_fake}")
    return why


def _with_official_offsets(metric: Metric, seed: int, num_workers: int, resolution: int) -> Metric:
    """``metric`` drawing its real clips as StyleGAN-V's code does: offsets from the torch seed
    ``seed`` and ``num_workers`` DataLoader workers, in its detector batches for ``resolution``."""
    from vgz.metrics.protocol import FID, FVD, OFFICIAL_FRAMES_PER_BATCH

    if isinstance(metric, FID):
        return metric  # every real frame: no offsets
    if not isinstance(metric, FVD):
        raise EvaluationError(f"{metric.name}: offsets='official' reproduces StyleGAN-V's metric code (fvd16, "
                              f"fvd128, fvd128_subsample8, fid); {metric.name} is not one of its metrics")
    config = metric.config.replace(offsets="official", real_seed=seed, offset_workers=num_workers,
                                   frames_per_batch=OFFICIAL_FRAMES_PER_BATCH.get(resolution, 128))
    return type(metric)(config)


# --------------------------------------------------------------------------------- evaluate


def evaluate(
    model: Any,
    data: Any,
    metrics: Sequence[str] = ("fvd16",),
    *,
    detectors: Sequence[Any] | None = None,
    num_videos: int | None = None,
    seed: int = 0,
    resolution: int | None = None,
    device: str | torch.device | None = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None | bool = None,
    progress: bool = True,
    bn_eps: float | None = None,
    truncation_psi: float = 1.0,
    noise_mode: str | None = None,
    hub_kwargs: dict[str, Any] | None = None,
    batch_size: int | None = None,
    offsets: str = "seeded",
    order: str | None = None,
    resolution_rule: str = "model",
) -> EvalReport:
    """Compute ``metrics`` of ``model`` against the real videos ``data``.

    Args:
        model: a pipeline, a pipeline folder or Hub repo id, or a folder of generated videos (then
            clips are taken from the start of each video, as StyleGAN-V's ``generator_as_dataset``).
        data: the real videos: a dataset spec (folder, zip, ``synthetic:shapes?...``) or a dataset.
        metrics: registered metric names (``vgz list metric``): ``fvd16``, ``fvd128``,
            ``fvd128_subsample8``, ``fid`` (official names such as ``fvd2048_16f`` work too).
        detectors: one video detector (for FVD) and/or one image detector (for FID): files, folders,
            Hub repo ids or :class:`FeatureDetector` objects.
        num_videos: use at most this many real and generated videos per metric instead of the
            protocol's numbers (quick checks; such values are not comparable to published ones).
        seed: seed of the generated samples (clip i uses ``derive_seed(seed, i)``); with
            ``offsets="official"`` also the torch seed of the official real clip offsets.
        resolution: evaluation resolution; default the model's (real frames are resized to it).
        device: default CUDA when available.
        num_workers: processes decoding real videos (default 2); with ``offsets="official"`` also the
            DataLoader workers whose draws are reproduced (default 3, the official code's).
        cache_dir: where real statistics are cached; None = :func:`default_cache_dir`, False = no cache.
        bn_eps: batch-norm epsilon of a state-dict I3D (1e-5 as the port, 1e-3 as TF-Hub's original).
        truncation_psi, noise_mode: passed to the pipeline (the protocol uses psi 1).
        hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token`` for Hub references.
        batch_size: videos generated per call of the model (FVD: clips; FID: videos of
            ``frames_per_video`` frames, or images from an image model); None: the protocol's
            detector batch (8 clips for FVD16, 1 for FVD128, 2 videos for FID). It sets the memory
            used, not the result: clip ``i`` comes from ``derive_seed(seed, i)`` and the detector
            takes the protocol's batches whatever it is (the model's batched convolutions may
            still round a last float bit differently).
        offsets: real FVD clip offsets: ``"seeded"`` (vgz: one seed per video, reproducible whatever
            the workers) or ``"official"`` (as StyleGAN-V's code draws them for the torch seed
            ``seed`` and ``num_workers`` workers; see :func:`~vgz.metrics.protocol.official_offsets`).
        order: the order of videos and frames in folders: ``"natural"`` (``2.png`` before ``10.png``;
            the default) or ``"plain"`` (Python's ``sorted()``, StyleGAN-V's; the default with
            ``offsets="official"``). It decides which clips and which "first 2048 videos" are read.
        resolution_rule: ``"model"`` (real frames, and generated videos of a folder, resized to the
            evaluation resolution, as preparing the dataset at the model's resolution does) or
            ``"native"`` (each set fed at its own frame size into the detector's own resize, as
            StyleGAN-V's code does with two folders).

    Before anything is decoded or generated, each detector is run on a black and a noise input
    (a detector with constant, non-finite or fewer than 2 features is refused: it would make the
    distance 0 or meaningless), and the video lengths are checked against each metric: no video
    long enough is an :class:`EvaluationError` naming the shortest and longest, fewer samples
    than the protocol asks for a :class:`~vgz.metrics.frechet.FewSamplesWarning`.
    """
    from vgz._version import __version__
    from vgz.pipelines.base import VideoPipeline

    start_all = time.time()
    hub_kwargs = hub_kwargs or {}
    if offsets not in ("seeded", "official"):
        raise EvaluationError(f"offsets: expected 'seeded' or 'official', found {offsets!r}")
    if resolution_rule not in ("model", "native"):
        raise EvaluationError(f"resolution_rule: expected 'model' or 'native', found {resolution_rule!r}")
    order = order or ("plain" if offsets == "official" else "natural")
    if order not in ("natural", "plain"):
        raise EvaluationError(f"order: expected 'natural' or 'plain', found {order!r}")
    if num_workers is None:
        num_workers = 3 if offsets == "official" else 2
    if num_workers < (1 if offsets == "official" else 0):
        raise EvaluationError(f"num_workers: expected >= 1 with offsets='official' (its offsets are drawn in "
                              f"DataLoader workers), found {num_workers}")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    chosen = [create_metric(m).limit(num_videos) for m in dict.fromkeys(ALIASES.get(m, m) for m in metrics)]
    if not chosen:
        raise EvaluationError("no metrics asked for")
    if batch_size is not None and batch_size < 1:
        raise EvaluationError(f"batch_size: expected a number of videos >= 1, found {batch_size}")
    dets = _load_detectors(detectors, device, bn_eps, hub_kwargs)
    for metric in chosen:
        if metric.detector_kind not in dets:
            raise EvaluationError(f"{metric.name} needs {_MISSING_DETECTOR[metric.detector_kind]}; pass it with "
                                  "--detector (several --detector options give one per kind)")

    # What makes the generated samples: a pipeline, or a folder of videos.
    pipe, fake_dataset = None, None
    if _is_model_ref(model):
        pipe = model if isinstance(model, VideoPipeline) else VideoPipeline.from_pretrained(model, **hub_kwargs)
        pipe = pipe.to(device).eval()
        resolution = resolution or _pipeline_resolution(pipe)
        model_name = str(model) if not isinstance(model, VideoPipeline) else type(model).__name__
    else:
        fake_dataset = _open(model, resolution or 64, "generated videos", order=order)
        if resolution is None or resolution_rule == "native":
            native = _native_resolution(fake_dataset)
            resolution = resolution or native
            fake_dataset = fake_dataset.at_resolution(native)
        model_name = str(model)
    synthesis = pipe.components.get("synthesis") if pipe is not None else None
    dataset = _open(data, resolution, "real data", render=synthesis, order=order,
                    native=resolution_rule == "native")
    if offsets == "official":
        chosen = [_with_official_offsets(m, seed, num_workers, resolution) for m in chosen]
    rules = {"offsets": offsets, "order": order, "resolution_rule": resolution_rule,
             "real_resolution": dataset.resolution,
             "fake_resolution": fake_dataset.resolution if fake_dataset is not None else resolution}

    # Cheap checks first (video lengths, then two inputs through each detector): nothing below is
    # worth hours of generation if these fail.
    warned = {}
    for metric in chosen:
        warned[metric.name] = _check_sample_counts(metric, dataset, "real data", real=True)
        if fake_dataset is not None:
            warned[metric.name] |= _check_sample_counts(metric, fake_dataset, "generated videos", real=False)
    for kind, det in dets.items():
        if any(m.detector_kind == kind for m in chosen):
            frames = min((getattr(m.config, "num_frames", 16) for m in chosen if m.detector_kind == kind), default=16)
            _check_detector_once(det, resolution, frames, device)

    labels = None
    if pipe is not None and getattr(pipe.components.get("mapping"), "config", None) is not None:
        if getattr(pipe.mapping.config, "c_dim", 0):
            if dataset.label_dim != pipe.mapping.config.c_dim:
                raise EvaluationError(f"the model takes {pipe.mapping.config.c_dim} labels, the real data has "
                                      f"{dataset.label_dim}")
            labels = np.stack([dataset.get_label(i) for i in range(dataset.num_videos)])
    call_kwargs: dict[str, Any] = {"truncation_psi": truncation_psi}
    if noise_mode is not None:
        call_kwargs["noise_mode"] = noise_mode

    cache = None if cache_dir is False else (default_cache_dir() if cache_dir in (None, True) else Path(cache_dir))
    results: dict[str, float] = {}
    protocols: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    with full_float32():
        for metric in chosen:
            results[metric.name], protocols[metric.name], seconds[metric.name] = _run_metric(
                metric, dets[metric.detector_kind], dataset, pipe, fake_dataset, device, cache, num_workers,
                progress, seed, labels, call_kwargs, resolution, comparable=num_videos is None,
                batch_size=batch_size, warned=warned[metric.name], rules=rules)
    seconds["total"] = round(time.time() - start_all, 3)

    return EvalReport(
        results=results,
        protocols=protocols,
        model=model_name,
        data=str(data.config.path) if hasattr(data, "config") else str(data),
        seed=seed,
        dataset={"name": dataset.config.path, "videos": dataset.num_videos, "skipped": len(dataset.skipped),
                 "resolution": resolution, "fingerprint": dataset.fingerprint()},
        generation={"source": "pipeline" if pipe is not None else "videos", **(
            {"pipeline": type(pipe).__name__, **call_kwargs, "batch_size": batch_size} if pipe is not None else {})},
        environment={"vgz": __version__, "torch": torch.__version__, "device": str(device),
                     "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                     or platform.machine(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        seconds=seconds,
    )
