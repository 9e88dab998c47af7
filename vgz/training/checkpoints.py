"""Checkpoint files of a training run: safetensors and JSON only, never a pickle.

A checkpoint is a folder ``checkpoints/step-N/``::

    G.safetensors, D.safetensors, ema.safetensors     weights
    G_optimizer.safetensors, D_optimizer.safetensors  Adam state (tensors; settings as JSON metadata)
    scaler.json                                       the fp16 loss scaler (when used)
    rank-K.json                                       every RNG of process K, ADA sign counts
    trainer_state.json                                step, kimg, ADA p, loss state; written last

Reading a file that is missing, empty, damaged or that does not fit the run raises a
:class:`CheckpointError` that names it.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vgz._version import __version__
from vgz.training.run_folder import RunFolderError
from vgz.utils import atomic_dir, atomic_path, atomic_write_text, describe_os_error

__all__ = ["CheckpointError", "CheckpointWarning", "CheckpointIO", "CHECKPOINTS", "TRAINER_STATE", "latest_checkpoint"]

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (a full disk...) or read (a file missing or damaged, named)."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was set aside and an older one used."""


def _checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's complete checkpoint folders (with their trainer state), oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-")
                  and (p / TRAINER_STATE).is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run (None when there is none)."""
    done = _checkpoints(run_dir)
    return done[-1] if done else None


def _encode_bytes(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode()


def _decode_bytes(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def _save_optimizer(optimizer: Any, path: Path) -> None:
    """An optimizer's state dict as safetensors: the tensors by ``param_index.name``, the rest (param
    groups, non-tensor state) as JSON in the file's metadata. No pickle."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    other: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().to("cpu").contiguous().clone()
            else:
                other.setdefault(str(index), {})[name] = value
    metadata = {"format": "vgz-optimizer-1", "param_groups": json.dumps(state["param_groups"]),
                "state": json.dumps(other)}
    _save_tensors(tensors, path, metadata)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    # Through atomic_path for the file mode any other tool's would get (safetensors writes 0600).
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _read_optimizer(path: Path) -> dict[str, Any]:
    """The state dict :func:`_save_optimizer` wrote."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("format") != "vgz-optimizer-1":
            raise ValueError(f"expected a vgz optimizer state (format vgz-optimizer-1), found "
                             f"{metadata.get('format')!r}")
        state: dict[int, dict[str, Any]] = {}
        for key in f.keys():
            index, _, name = key.partition(".")
            state.setdefault(int(index), {})[name] = f.get_tensor(key)
    for index, entries in json.loads(metadata["state"]).items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": json.loads(metadata["param_groups"])}


def _load_optimizer(optimizer: Any, saved: dict[str, Any]) -> None:
    # JSON turned tuples (Adam's betas) into lists: give them back the type the optimizer uses.
    for group, current in zip(saved["param_groups"], optimizer.param_groups):
        for key, value in current.items():
            if isinstance(value, tuple) and isinstance(group.get(key), list):
                group[key] = tuple(group[key])
    optimizer.load_state_dict(saved)


def _checkpoint_file(path: Path, use: Callable[[Path], Any]) -> Any:
    """``use(path)``, with any failure (missing, truncated, not parseable, not fitting) as a
    :class:`CheckpointError` that names the file."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return use(path)
    except Exception as exc:  # any failure to read or apply a file means this checkpoint cannot be used
        size = path.stat().st_size if path.exists() else 0
        reason = f"{type(exc).__name__}: {exc}"
        reason = reason if len(reason) <= 300 else reason[:300] + "..."
        what = "is empty" if size == 0 else f"is damaged or does not fit this run ({reason})"
        raise CheckpointError(f"{path} {what}") from None


def _trainer_state(state: Any) -> dict[str, Any]:
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or not isinstance(state.get("nimg"), int):
        raise ValueError("expected a JSON object with integer step and nimg")
    return state



class CheckpointIO:
    """The checkpoint half of :class:`~vgz.training.trainer.Trainer`: writing, reading and choosing
    checkpoints (it uses the trainer's accelerator, networks, optimizers, RNGs and run folder)."""

    def _remove_partial_checkpoints(self) -> None:
        # Left by a save that was killed or failed; never complete, and they hold disk space. An
        # ".old" is a complete checkpoint being replaced: put back if its replacement never arrived.
        folder = self.outdir / CHECKPOINTS
        if folder.is_dir():
            for partial in sorted(folder.iterdir()):
                name = partial.name
                if name.startswith(".step-") and name.endswith(".old") and not (folder / name[1:-4]).exists():
                    partial.replace(folder / name[1:-4])
                elif name.startswith(".step-") and name.endswith((".tmp", ".old")):
                    shutil.rmtree(partial, ignore_errors=True)

    def _resume(self) -> None:
        """Load the newest checkpoint that reads on every process; set damaged ones aside."""
        acc = self.accelerator
        candidates = list(reversed(_checkpoints(self.outdir)))
        if not candidates:
            if acc.is_main_process:
                print(f"--resume: {self.outdir} has no checkpoint yet; starting from step 0")
            return
        problems: list[str] = []
        for folder in candidates:
            error: CheckpointError | None = None
            try:
                self.load_checkpoint(folder)
            except CheckpointError as exc:
                error = exc
            if not self._any_process(error is not None):
                if problems and acc.is_main_process:
                    warnings.warn(f"resuming from the older checkpoint {folder}: " + "; ".join(problems),
                                  CheckpointWarning, stacklevel=3)
                return
            reason = str(error) if error is not None else f"{folder} cannot be read on another process"
            if acc.is_main_process:
                # Out of the way, so that it neither shadows the good ones nor counts as a kept one.
                aside = folder.with_name(f"damaged-{folder.name}")
                n = 1
                while aside.exists():
                    aside, n = folder.with_name(f"damaged-{folder.name}.{n}"), n + 1
                try:
                    folder.rename(aside)
                    reason += f" (moved to {aside})"
                except OSError:
                    pass
            problems.append(reason)
            acc.wait_for_everyone()
        raise CheckpointError(f"no checkpoint of {self.outdir} can be read: " + "; ".join(problems)
                              + ". The run was not resumed; to start over, run the same command without --resume "
                              "(the damaged checkpoints stay aside as damaged-step-N), or choose another --outdir")

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step-N`` atomically (all processes take part) and export the pipeline.

        Raises:
            CheckpointError: a write failed (a full disk, no permission); the partial folder is
                removed, the earlier checkpoints are left as they were.
        """
        acc = self.accelerator
        main = acc.is_main_process
        folder = self.outdir / CHECKPOINTS
        final = folder / f"step-{self.step:08d}"
        tmp = folder / f".step-{self.step:08d}.tmp"

        def agree(write: Callable[[], None], everywhere: bool, where: Path) -> str | None:
            # One collective: every process learns whether any failed, so none waits for one that gave up.
            error: OSError | None = None
            if main or everywhere:
                try:
                    write()
                except OSError as exc:
                    error = exc
            if not self._any_process(error is not None):
                return None
            return describe_os_error(error, where) if error is not None else "a write failed on another process"

        def stage(write: Callable[[], None], *, everywhere: bool = False) -> None:
            reason = agree(write, everywhere, folder)
            if reason is not None:
                if main:
                    shutil.rmtree(tmp, ignore_errors=True)
                before = (f"the previous checkpoint {self.last_checkpoint} is intact and --resume continues from it"
                          if self.last_checkpoint is not None and self.last_checkpoint.is_dir()
                          else "no earlier checkpoint exists")
                raise CheckpointError(f"checkpoint of step {self.step} not saved: {reason}. The partial folder was "
                                      f"removed; {before}")

        def make_tmp() -> None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)

        def publish() -> None:
            # trainer_state.json last: its presence marks a complete checkpoint.
            trainer_state = {"step": self.step, "nimg": self.nimg, "vgz_version": __version__,
                             **self.recipe.state_dict(),
                             "world_size": acc.num_processes}
            atomic_write_text(tmp / TRAINER_STATE, json.dumps(trainer_state, indent=2) + "\n")
            old = folder / f".step-{self.step:08d}.old"
            if final.exists():  # the same step saved again: keep it until the new one is in place
                shutil.rmtree(old, ignore_errors=True)
                final.replace(old)
            try:
                tmp.replace(final)
            except OSError:
                if old.exists() and not final.exists():
                    old.replace(final)
                raise
            shutil.rmtree(old, ignore_errors=True)

        stage(make_tmp)
        stage(lambda: self._write_state(tmp), everywhere=True)
        stage(publish)
        self.last_checkpoint = final
        if main:
            for stale in sorted(p for p in folder.iterdir() if p.name.startswith("step-"))[:-self.run.keep_checkpoints]:
                shutil.rmtree(stale, ignore_errors=True)

        def export() -> None:
            with atomic_dir(self.outdir / "pipeline", overwrite=True) as out:
                self.pipeline().save_pretrained(out)

        reason = agree(export, False, self.outdir / "pipeline")
        if reason is not None:
            raise CheckpointError(f"checkpoint {final} saved, but its pipeline was not exported: {reason}; "
                                  "--resume continues from the checkpoint")
        return final

    def _write_state(self, folder: Path) -> None:
        """Everything a resume needs, into ``folder``: safetensors and JSON only."""
        acc = self.accelerator
        if acc.is_main_process:
            for name, net in self.nets.items():
                _save_tensors(_cpu_state(acc.unwrap_model(net)), folder / f"{name}.safetensors")
                _save_optimizer(self.optimizers[name], folder / f"{name}_optimizer.safetensors")
            if self.G_ema is not None:
                _save_tensors(_cpu_state(self.G_ema), folder / "ema.safetensors")
            if acc.scaler is not None:
                atomic_write_text(folder / "scaler.json", json.dumps(acc.scaler.state_dict()))
        # Per process: the RNGs (latents, clip times, and the global ones augmentations and noise draw from).
        numpy_state = np.random.get_state()
        py_state = random.getstate()
        mine = {"np_rng": self.np_rng.bit_generator.state, "z_gen": _encode_bytes(self.z_gen.get_state()),
                **self.recipe.rank_state(),
                "python_random": [py_state[0], list(py_state[1]), py_state[2]],
                "numpy_random": [numpy_state[0], numpy_state[1].tolist(), int(numpy_state[2]), int(numpy_state[3]),
                                 float(numpy_state[4])],
                "torch_random": _encode_bytes(torch.get_rng_state())}
        if self.device.type == "cuda":
            mine["cuda_random"] = _encode_bytes(torch.cuda.get_rng_state(self.device))
        atomic_write_text(folder / f"rank-{acc.process_index}.json", json.dumps(mine))

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (same number of processes).

        Raises:
            CheckpointError: a file is missing, damaged or does not fit this run (it is named).
            RunFolderError: the checkpoint is of another number of processes, or of the pickle
                format of vgz development versions before 0.1.
        """
        from safetensors.torch import load_file

        folder = Path(folder)
        acc = self.accelerator
        if (folder / "optimizer.bin").exists() and not (folder / "G_optimizer.safetensors").exists():
            raise RunFolderError(f"{folder} is in the pickle format of earlier vgz development versions, which vgz "
                                 f"no longer reads (it loads no pickles); start a new run (the run's pipeline/ "
                                 "still loads)")
        state = _checkpoint_file(folder / TRAINER_STATE, lambda p: _trainer_state(json.loads(p.read_text())))
        if state.get("world_size", 1) != acc.num_processes:
            raise RunFolderError(f"{folder} was written by {state['world_size']} processes, this run has "
                                 f"{acc.num_processes}; resume with the same number of processes")
        mine = _checkpoint_file(folder / f"rank-{acc.process_index}.json", lambda p: json.loads(p.read_text()))
        for name, net in self.nets.items():
            plain, opt = acc.unwrap_model(net), self.optimizers[name]
            _checkpoint_file(folder / f"{name}.safetensors",
                             lambda p, m=plain: m.load_state_dict(load_file(str(p), device=str(self.device))))
            _checkpoint_file(folder / f"{name}_optimizer.safetensors",
                             lambda p, o=opt: _load_optimizer(o, _read_optimizer(p)))
        if self.G_ema is not None:
            _checkpoint_file(folder / "ema.safetensors",
                             lambda p: self.G_ema.load_state_dict(load_file(str(p), device=str(self.device))))
        if acc.scaler is not None:
            _checkpoint_file(folder / "scaler.json", lambda p: acc.scaler.load_state_dict(json.loads(p.read_text())))
        self.step, self.nimg = state["step"], state["nimg"]
        self.phases = self.recipe.phases()  # fresh loss objects, then their state
        _checkpoint_file(folder / TRAINER_STATE, lambda p: self.recipe.load_state_dict(state))
        _checkpoint_file(folder / f"rank-{acc.process_index}.json", lambda p: self._restore_random(mine))
        for net in self.nets.values():
            acc.unwrap_model(net).requires_grad_(False)
        self.last_checkpoint = folder

    def _restore_random(self, mine: dict[str, Any]) -> None:
        self.np_rng.bit_generator.state = mine["np_rng"]
        self.z_gen.set_state(_decode_bytes(mine["z_gen"]))
        self.recipe.load_rank_state(mine)
        version, internal, gauss = mine["python_random"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = mine["numpy_random"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(_decode_bytes(mine["torch_random"]))
        if self.device.type == "cuda" and "cuda_random" in mine:
            torch.cuda.set_rng_state(_decode_bytes(mine["cuda_random"]), self.device)
