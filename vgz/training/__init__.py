"""Training: recipes (what to train), the Accelerate trainer (how), ADA augmentation and GAN losses.

    from vgz.training import build_trainer
    trainer = build_trainer("styleganv", preset="tiny", data="synthetic:shapes", outdir="runs/demo")
    trainer.train()

The same from the shell: ``vgz train --recipe styleganv --data synthetic:shapes --preset tiny``.
Imports are lazy: ``import vgz.training`` does not import torch.
"""

from __future__ import annotations

from vgz._lazy import lazy_attributes

_EXPORTS = {
    "Trainer": "vgz.training.trainer",
    "RunConfig": "vgz.training.trainer",
    "TrainingDiverged": "vgz.training.trainer",
    "RunFolderError": "vgz.training.run_folder",
    "CheckpointError": "vgz.training.checkpoints",
    "CheckpointWarning": "vgz.training.checkpoints",
    "RunLock": "vgz.training.run_folder",
    "read_run_config": "vgz.training.run_folder",
    "build_trainer": "vgz.training.build",
    "resolve_configs": "vgz.training.build",
    "latest_checkpoint": "vgz.training.checkpoints",
    "Recipe": "vgz.training.recipes",
    "RecipeConfig": "vgz.training.recipes",
    "Phase": "vgz.training.recipes",
    "AugmentPipe": "vgz.training.augment",
    "AugmentConfig": "vgz.training.augment",
    "StyleGAN2Loss": "vgz.training.losses",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS)
