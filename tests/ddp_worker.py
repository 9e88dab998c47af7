"""Run by test_training.py under `accelerate launch --multi_gpu --num_processes 2` (CPU, gloo).

Trains a tiny StyleGAN-V for 3 steps, then every rank writes its weights for the test to compare.
"""

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from vgz.training import build_trainer

out = Path(os.environ["VGZ_TEST_OUT"])
trainer = build_trainer("styleganv", preset="tiny", data="synthetic:shapes?num_videos=16&num_frames=48",
                        outdir=out / "run", overrides={"batch_size": 4, "mbstd_group_size": 2},
                        run_overrides={"steps": 3, "num_workers": 0, "progress": False, "checkpoint_every": 3,
                                       "sample_every": 100, "sample_seeds": [0], "sample_frames": 2})
trainer.train()
acc = trainer.accelerator
weights = {f"G.{k}": v for k, v in acc.unwrap_model(trainer.G).named_parameters()}
weights.update({f"D.{k}": v for k, v in acc.unwrap_model(trainer.D).named_parameters()})
weights.update({f"ema.{k}": v for k, v in trainer.G_ema.named_parameters()})
save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(out / f"rank{acc.process_index}.safetensors"))
if acc.is_main_process:
    (out / "info.json").write_text(json.dumps({"world_size": acc.num_processes, "step": trainer.step,
                                               "rounds": trainer.rounds}))
