"""The trainer: a recipe's schedule on Accelerate, with EMA, mixed precision and resumable runs.

    trainer = build_trainer(recipe="styleganv", preset="tiny", data="synthetic:shapes", outdir="runs/demo")
    trainer.train()

One step runs every phase of the recipe's schedule that is due (for GANs: G main, G reg every
``g_reg_interval`` steps, D main, D reg every ``d_reg_interval``), each over ``batch_size`` clips
split into rounds of ``batch_gpu`` per process (gradient accumulation), then updates the EMA copy
of the recipe's pipeline network (when it keeps one) and lets the recipe adapt what it adapts
(ADA's probability, every ``ada_interval`` steps). Everything model-specific is the recipe's
(:mod:`vgz.training.recipes`). It runs unchanged on one CPU, one GPU, or many processes launched
with ``accelerate launch`` (DDP; on CPU with gloo).

A run folder holds::

    config.json          the resolved recipe, run and data settings (preset, data fingerprint)
    checkpoints/step-N/  each network's weights and optimizer state (G, D, ...), the EMA weights
                         (safetensors), the loss scaler, RNG states per process and the trainer and
                         recipe state (step, kimg, ADA p) (JSON): no pickles
    pipeline/            the EMA generator (or the recipe's network) as a pipeline folder
    samples/             sample videos (or image grids) of fixed seeds
    logs/                TensorBoard scalars; stats.jsonl the same as JSON lines
    .vgz-train.lock      locked (flock) while a process trains in the folder

Checkpoints are written under a temporary name and renamed; a failed write (a full disk) removes
the partial folder and names the device. ``resume=True`` continues from the latest with the same
step, optimizer, data position and RNG state; a damaged newest checkpoint is named, moved aside and
the older one used. SIGINT/SIGTERM (to the process or its whole group: data-loader workers ignore
them) save one and stop, and the CLI exits 130/143; a non-finite loss stops the run with
:class:`TrainingDiverged`, keeping the last good one.
"""

from __future__ import annotations

import json
import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from vgz.configs import ComponentConfig, config_field
from vgz.training.checkpoints import CheckpointIO
from vgz.training.losses import PhaseContext
from vgz.training.recipes.base import Recipe, copy_generator
from vgz.training.run_folder import RunLock
from vgz.utils import atomic_write_text

__all__ = ["RunConfig", "Trainer", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped without saving over good checkpoints."""


@dataclass
class RunConfig(ComponentConfig):
    """How a run is carried out (not what is trained: that is the recipe's config)."""

    steps: Optional[int] = config_field(None, min=0, help="training steps; None = the recipe's total_kimg")
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = config_field(0, min=0)
    num_workers: int = config_field(2, min=0, help="data-loader worker processes per training process")
    checkpoint_every: int = config_field(1000, min=1, help="steps between checkpoints")
    keep_checkpoints: int = config_field(2, min=1, help="newest checkpoints kept")
    sample_every: int = config_field(1000, min=1, help="steps between sample videos")
    sample_seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    sample_frames: int = config_field(32, min=1, help="frames of each sample video")
    log_every: int = config_field(20, min=1, help="steps between log lines")
    find_unused_parameters: bool = config_field(False, help="DDP: allow parameters without gradients")
    cpu: bool = config_field(False, help="train on the CPU even when a GPU is present")
    progress: bool = config_field(True, help="show a progress bar")

    def total_steps(self, recipe: Recipe, dataset: Any | None = None) -> int | None:
        """``steps``, or the recipe's length (:meth:`Recipe.default_steps`: for most, its ``total_kimg``
        of real frames; None when it depends on a dataset that is not given)."""
        return self.steps if self.steps is not None else recipe.default_steps(dataset)


class Trainer(CheckpointIO):
    """Trains a recipe's G and D on a dataset; see the module docstring.

    The run folder is locked (:class:`RunLock`) from construction until :meth:`train` ends or
    :meth:`close` is called, so two processes never train into one folder.

    Args:
        recipe: a :class:`~vgz.training.recipes.Recipe`.
        dataset: a :class:`~vgz.data.datasets.VideoDataset` sampling the recipe's clips.
        outdir: the run folder.
        run: the :class:`RunConfig`.
        resume: continue from the latest checkpoint in ``outdir`` (start afresh if there is none);
            a damaged one is moved aside (``checkpoints/damaged-step-N``) with a warning and the
            next older one is used.

    Raises:
        RunFolderError: another process trains in ``outdir``; a checkpoint of another number of
            processes or of an older format.
        CheckpointError: ``resume`` and no checkpoint can be read (each is named with its problem).
    """

    def __init__(self, recipe: Recipe, dataset: Any, outdir: str | Path, run: RunConfig | None = None, *,
                 resume: bool = False):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.recipe, self.dataset, self.run = recipe, dataset, run or RunConfig()
        self.outdir = Path(outdir)
        cfg = recipe.config
        use_cpu = self.run.cpu or not torch.cuda.is_available()
        if self.run.mixed_precision == "fp16" and use_cpu:
            raise ValueError("mixed_precision='fp16' needs a GPU (loss scaling is CUDA-only here); "
                             "use 'bf16' or 'no' on a CPU")
        ddp = DistributedDataParallelKwargs(find_unused_parameters=self.run.find_unused_parameters,
                                            broadcast_buffers=False)
        self.accelerator = acc = Accelerator(mixed_precision=self.run.mixed_precision, cpu=use_cpu,
                                             kwargs_handlers=[ddp])
        self.device = acc.device
        world = acc.num_processes
        self.batch_gpu = cfg.batch_gpu or cfg.batch_size // world
        if cfg.batch_size % (world * self.batch_gpu) or self.batch_gpu < 1:
            raise ValueError(f"batch_size={cfg.batch_size} must be a multiple of processes ({world}) x "
                             f"batch_gpu ({self.batch_gpu})")
        self.rounds = cfg.batch_size // (world * self.batch_gpu)
        #: The run's settings as in config.json (set by :func:`build_trainer`).
        self.settings: dict[str, Any] = {}
        # One process per run folder; the main process holds the lock for all of a DDP run's.
        self._lock = RunLock(self.outdir).acquire() if acc.is_main_process else None
        try:
            self._setup(recipe, dataset, resume)
        except BaseException:
            self.close()
            raise

    def _setup(self, recipe: Recipe, dataset: Any, resume: bool) -> None:
        acc = self.accelerator
        world, rank = acc.num_processes, acc.process_index
        if acc.is_main_process:
            self._remove_partial_checkpoints()
        # Seeds differ per process (as the official loop), so ranks draw different latents and augmentations.
        torch.manual_seed(self.run.seed * world + rank)
        self.np_rng = np.random.default_rng([self.run.seed, rank])
        self.z_gen = torch.Generator().manual_seed(self.run.seed * world + rank + 2**31)

        recipe.use_dataset(dataset)
        self.total_steps = self.run.total_steps(recipe, dataset)
        nets = recipe.build(img_channels=dataset.num_channels, c_dim=dataset.label_dim)
        #: the EMA copy of the recipe's pipeline network (None when the recipe keeps no EMA)
        self.G_ema = copy_generator(nets[recipe.pipeline_network]).to(self.device) if recipe.ema else None
        recipe.setup(self)
        # What each phase trains: the parameters that require grad as built, so that frozen layers
        # (Freeze-D, a transfer fine-tune's frozen blocks) stay frozen and stay out of DDP.
        self._trainable = {name: [p for p in net.parameters() if p.requires_grad] for name, net in nets.items()}
        opts = {name: recipe.optimizer(name, net.parameters()) for name, net in nets.items()}
        prepared = acc.prepare(*nets.values(), *opts.values())
        #: the trained networks by name (DDP-wrapped when distributed) and their optimizers
        self.nets = dict(zip(nets, prepared[:len(nets)]))
        self.optimizers = dict(zip(opts, prepared[len(nets):]))
        for net in self.nets.values():
            acc.unwrap_model(net).requires_grad_(False)
        self.phases = recipe.phases()

        self.step, self.nimg = 0, 0
        #: name -> detached tensors the losses logged since the last log line
        self.stats: dict[str, list[torch.Tensor]] = {}
        self._stop_signal: int | None = None
        self._data_wait = 0.0  # seconds spent waiting for clips since the last log
        self._nonfinite_streak = 0
        self._writer: Any = None
        self._batches: Any = None  # the data-loader iterator, opened by train() (or the first step)
        self.last_checkpoint: Path | None = None
        if resume:
            self._resume()

    # GAN recipes' networks by their usual names.
    G = property(lambda self: self.nets["G"])
    D = property(lambda self: self.nets["D"])
    opt_G = property(lambda self: self.optimizers["G"])
    opt_D = property(lambda self: self.optimizers["D"])
    augment_pipe = property(lambda self: getattr(self.recipe, "augment_pipe", None))

    @property
    def stop_signal(self) -> int | None:
        """The signal that stopped the last :meth:`train` (``signal.SIGINT``/``SIGTERM``), else None."""
        return self._stop_signal

    def close(self) -> None:
        """Stop the data-loader workers and release the run folder's lock (:meth:`train` does both
        when it ends; a later :meth:`train` takes them again)."""
        self._close_data()
        if getattr(self, "_lock", None) is not None:
            self._lock.release()

    def _any_process(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (a collective: all processes call it)."""
        if self.accelerator.num_processes == 1:
            return flag
        total = self.accelerator.reduce(torch.tensor([float(flag)], device=self.device), reduction="sum")
        return bool(total[0] > 0)

    # ----------------------------------------------------------------------------- data

    def _open_data(self) -> None:
        from vgz.data.datasets import make_dataloader
        from vgz.data.sampling import InfiniteClipSampler

        acc = self.accelerator
        # The data position is a pure function of the step: resuming skips what was consumed.
        consumed = self.step * self.rounds * self.batch_gpu
        sampler = InfiniteClipSampler(len(self.dataset), rank=acc.process_index, world_size=acc.num_processes,
                                      seed=self.run.seed, start=consumed)
        loader = make_dataloader(self.dataset, batch_size=self.batch_gpu, sampler=sampler,
                                 num_workers=self.run.num_workers, pin_memory=self.device.type == "cuda")
        # A SIGINT/SIGTERM sent to the whole process group (Ctrl-C, scancel) must not kill a worker
        # that has not yet set it to be ignored (its worker_init): the workers start with both
        # blocked, and what arrives meanwhile reaches this process once they are started.
        block = hasattr(signal, "pthread_sigmask")
        if block:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            # Starting the loader draws a worker seed from the global RNG; the draw must not shift the
            # training RNG, or a resumed run would differ from an uninterrupted one.
            with torch.random.fork_rng(devices=[]):
                self._batches = iter(loader)
        finally:
            if block:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _close_data(self) -> None:
        # Workers ignore SIGTERM, so they are told to stop now rather than left to the exit handlers.
        from vgz.data.datasets import shutdown_workers

        batches, self._batches = getattr(self, "_batches", None), None
        if batches is not None:
            shutdown_workers(batches)

    def _real_batch(self) -> dict[str, torch.Tensor]:
        if self._batches is None:
            self._open_data()
        start = time.perf_counter()
        batch = next(self._batches)
        self._data_wait += time.perf_counter() - start  # > 0 on a steady run: the loader is the bottleneck
        return self.recipe.real_batch(batch, self.device)

    # ----------------------------------------------------------------------------- one step

    def _grad(self, output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """d output / d inputs with a graph; under fp16 loss scaling the scale is applied then removed,
        so small gradients do not underflow and penalties see true values."""
        scaler = self.accelerator.scaler
        scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
        (grads,) = torch.autograd.grad(output * scale, inputs, create_graph=True)
        return grads / scale if scale != 1.0 else grads

    def train_step(self) -> dict[str, float]:
        """One iteration: every due phase, the EMA update and the recipe's end of step (ADA).

        Returns the phase losses of this step on this process (floats).
        """
        acc, cfg = self.accelerator, self.recipe.config
        real = [self._real_batch() for _ in range(self.rounds)]
        plain_nets = {name: acc.unwrap_model(net) for name, net in self.nets.items()}
        losses: dict[str, float] = {}
        for phase in self.phases:
            if self.step % phase.interval:
                continue
            net, opt, plain = self.nets[phase.network], self.optimizers[phase.network], plain_nets[phase.network]
            # The network being trained is called through its DDP wrapper (gradients sync); the others plain.
            ctx_nets = {**plain_nets, phase.network: net}
            opt.zero_grad(set_to_none=True)
            for p in self._trainable[phase.network]:
                p.requires_grad_(True)
            total = torch.zeros([], device=self.device)
            for r in range(self.rounds):
                ctx = PhaseContext(nets=ctx_nets, augment=self.recipe.augment, real=real[r],
                                   gen=self.recipe.phase_inputs(self, self.batch_gpu), grad=self._grad,
                                   stats=self.stats, step=self.step)
                # Gradients are all-reduced once, on the last round.
                with (acc.no_sync(net) if r < self.rounds - 1 else nullcontext()), acc.autocast():
                    # Lazy regularization: a penalty every `interval` steps weighs `interval` times.
                    loss = phase.loss(ctx) * ((phase.interval if phase.lazy else 1) / self.rounds)
                acc.backward(loss)
                total += loss.detach()
            plain.requires_grad_(False)
            if acc.scaler is None:  # with loss scaling, non-finite gradients make the scaler skip the step
                for p in plain.parameters():
                    if p.grad is not None:
                        torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
            losses[phase.name] = total
        self._update_ema()
        self.nimg += cfg.batch_size * cfg.num_frames
        self.step += 1
        self.recipe.end_step(self)
        return {k: float(v) for k, v in losses.items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        beta = self.recipe.ema_beta(self.nimg)
        net = self.accelerator.unwrap_model(self.nets[self.recipe.pipeline_network])
        for p_ema, p in zip(self.G_ema.parameters(), net.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), net.buffers()):
            b_ema.copy_(b)

    # ----------------------------------------------------------------------------- the loop

    def train(self) -> str:
        """Train until ``total_steps``; returns ``"done"`` or ``"interrupted"`` (a signal: saved, stopped;
        :attr:`stop_signal` says which).

        SIGINT and SIGTERM, to this process or to its whole process group, end the current step,
        save a checkpoint and stop (a second SIGINT stops at once). The data-loader workers run only
        while ``train`` does, and the run folder stays locked until it returns.

        Raises:
            TrainingDiverged: a loss became non-finite (nothing is saved over good checkpoints).
            CheckpointError: a checkpoint could not be written (the partial one is removed).
        """
        acc, run = self.accelerator, self.run
        main = acc.is_main_process
        if main and self._lock is not None:
            self._lock.acquire()  # again, when an earlier train() released it
        self._stop_signal = None
        previous = {}
        # Installed before the workers start, so that no signal finds this process without them.
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: no graceful stop on signals
                pass
        bar = None
        status = "done"
        try:
            if main:
                self._open_logs()
            if self._batches is None:
                self._open_data()
            if main and run.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)
            tick = time.perf_counter()
            logged, logged_step = tick, self.step  # the log's seconds per step: the mean since the last log
            while self.step < self.total_steps:
                losses = self.train_step()
                nonfinite = float(any(not math.isfinite(v) for v in losses.values()))
                flags = acc.reduce(torch.tensor([nonfinite, float(self._stop_signal is not None)],
                                                device=self.device), reduction="sum")
                # Under fp16 loss scaling an overflow makes a loss infinite and the scaler skips that
                # step and lowers the scale; only a run of such steps is divergence.
                self._nonfinite_streak = self._nonfinite_streak + 1 if flags[0] > 0 else 0
                scaling = acc.scaler is not None and acc.scaler.is_enabled()
                if self._nonfinite_streak >= (20 if scaling else 1):
                    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
                    where = ", ".join(f"{k} loss {v}" for k, v in bad.items()) or "loss on another process"
                    kept = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else \
                        "no checkpoint was written yet"
                    raise TrainingDiverged(f"training diverged at step {self.step}: {where}; the run stopped and "
                                           f"{kept}. Lower the learning rate or raise r1_gamma, then --resume.")
                now = time.perf_counter()
                sec_per_step, tick = now - tick, now
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(kimg=f"{self.nimg / 1000:.1f}", s_step=f"{sec_per_step:.2f}")
                if self.step % run.log_every == 0 or self.step == self.total_steps:
                    # A mean, not the last step: recipes whose phases run every k-th step (StyleVideoGAN's
                    # generator, lazy regularization) have steps of very different lengths.
                    self._log((now - logged) / max(self.step - logged_step, 1))
                    logged, logged_step = now, self.step
                if flags[1] > 0:
                    if self._stop_signal is None:  # another process was signalled: stop as for a TERM
                        self._stop_signal = signal.SIGTERM
                    self.save_checkpoint()
                    status = "interrupted"
                    if main:
                        print(f"\nStopped by a signal at step {self.step}; saved {self.last_checkpoint}. "
                              "Continue with --resume.", flush=True)
                    break
                if self.step % run.checkpoint_every == 0 or self.step == self.total_steps:
                    self.save_checkpoint()
                if self.step % run.sample_every == 0 or self.step == self.total_steps:
                    self.save_samples()
        finally:
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._close_data()
            for s, handler in previous.items():
                signal.signal(s, handler)
            if self._lock is not None:
                self._lock.release()
        return status

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self._stop_signal = signum

    # ----------------------------------------------------------------------------- logs and samples

    def _open_logs(self) -> None:
        """Open TensorBoard and stats.jsonl at the current step: what an earlier process logged after
        it (steps that will be trained again from this checkpoint) is dropped, not shown twice."""
        from torch.utils.tensorboard import SummaryWriter

        logs = self.outdir / "logs"
        stats = logs / "stats.jsonl"
        earlier = logs.is_dir() and any(logs.iterdir())
        if stats.is_file():
            kept = []
            for line in stats.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a killed process
                if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= self.step:
                    kept.append(line + "\n")
            atomic_write_text(stats, "".join(kept))
        # purge_step: TensorBoard hides the earlier files' events of the steps after this one.
        self._writer = SummaryWriter(str(logs), purge_step=self.step + 1 if earlier else None)

    def _log(self, sec_per_step: float) -> None:
        """Average the stats gathered since the last log over all processes; write them on the main one
        with ``sec_per_step`` (the mean since the last log) and the seconds spent waiting for data since."""
        acc = self.accelerator
        self.stats["progress/data_wait_sec"] = [torch.tensor([self._data_wait], device=self.device)]
        self._data_wait = 0.0
        names = sorted(self.stats)
        sums = [torch.cat(self.stats[n]).sum() if self.stats[n] else torch.zeros([], device=self.device)
                for n in names]
        counts = [float(sum(v.numel() for v in self.stats[n])) for n in names]
        self.stats.clear()
        if not names:
            return
        totals = acc.reduce(torch.stack([torch.stack(sums).to(self.device).float(),
                                         torch.tensor(counts, device=self.device)]), reduction="sum")
        if not acc.is_main_process:
            return
        record: dict[str, float] = {n: float(totals[0, i] / max(float(totals[1, i]), 1.0)) for i, n in enumerate(names)}
        record.update({"progress/step": self.step, "progress/kimg": self.nimg / 1000,
                       "progress/sec_per_step": sec_per_step,
                       **self.recipe.log_values(),
                       **{f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}})
        if self._writer is not None:
            for key, value in record.items():
                self._writer.add_scalar(key, value, global_step=self.step)
            self._writer.flush()
        with open(self.outdir / "logs" / "stats.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **record}) + "\n")

    def pipeline(self) -> Any:
        """The trained network (its EMA copy, where the recipe keeps one) as the recipe's pipeline
        (sharing its modules)."""
        net = self.G_ema if self.G_ema is not None else self.nets[self.recipe.pipeline_network]
        return self.recipe.make_pipeline(self.accelerator.unwrap_model(net))

    def save_samples(self) -> Path | None:
        """Sample videos (or an image grid) of the run's fixed seeds, written on the main process."""
        if not self.accelerator.is_main_process or not self.run.sample_seeds:
            return None
        from vgz.data.video import export_video, tile_videos

        # Sampling must not move the training RNGs: a run with more samples trains the same.
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            frames = self.recipe.sample(self.pipeline(), list(self.run.sample_seeds), self.run.sample_frames).cpu()
        rows = max(r for r in range(1, int(math.sqrt(len(frames))) + 1) if len(frames) % r == 0)
        grid = tile_videos(frames, rows)
        folder = self.outdir / "samples"
        if grid.shape[0] == 1:  # images
            from PIL import Image

            from vgz.utils import atomic_path

            path = folder / f"step-{self.step:08d}.png"
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                array = (grid[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(tmp, format="PNG")
            return path
        return export_video(grid, folder / f"step-{self.step:08d}.mp4", fps=self.recipe.config.fps)


