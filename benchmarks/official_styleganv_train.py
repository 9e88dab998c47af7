"""One training iteration of the official StyleGAN-V code (universome/stylegan-v), for benchmarks.

The official ``src/training/training_loop.py`` cannot be called one iteration at a time (it builds its
dataset, writes snapshots, imports tensorboard and torchvision), so :class:`OfficialTrainer` builds what
``src/train.py`` + ``training_loop()`` build -- Generator, Discriminator, G_ema, AugmentPipe,
``training.loss.StyleGAN2Loss``, the Adam optimizers of the lazily regularized phases -- from the official
modules, and :meth:`OfficialTrainer.step` runs the body of the loop's ``while True`` once: draw z / c / t
for every phase, run the due phases (``Gmain``, ``Greg``, ``Dmain``, ``Dreg``) through
``loss.accumulate_gradients`` with the loop's gain, nan_to_num and optimizer step, update G_ema, and run
the ADA heuristic every ``ada_interval`` iterations. Snapshots, metrics and logging are left out.

The networks, loss, augmentation and stats are the official code, imported from the checkout given to
:func:`import_official_training`; this module only wires them up. Nothing here is part of vgz.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch

# src/train.py's `augpipe_specs` (the ones StyleGAN-V runs with).
AUGPIPE_SPECS = {
    "bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                lumaflip=1, hue=1, saturation=1),
}

# The resolved `cfg.sampling` (configs/sampling/base.yaml + random.yaml, dataset/base.yaml).
SAMPLING = dict(name="random3_max32", fps=25, max_num_frames=1024, num_frames_per_video=3, type="random",
                total_dists=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048], max_dist=32)


def import_official_training(path: str) -> SimpleNamespace:
    """Import the official networks, loss, augmentation and stats modules (CUDA ops fall back on CPU)."""
    path = os.path.abspath(path)
    if not os.path.isfile(os.path.join(path, "src", "training", "loss.py")):
        raise SystemExit(f"--official {path!r} is not a universome/stylegan-v checkout (no src/training/loss.py)")
    sys.dont_write_bytecode = True
    sys.path[:0] = [path, os.path.join(path, "src")]
    from omegaconf import OmegaConf
    from src.torch_utils import misc, training_stats
    from src.torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
    from training import augment, loss, networks
    from training.layers import sample_frames

    return SimpleNamespace(OmegaConf=OmegaConf, misc=misc, training_stats=training_stats, networks=networks,
                           loss=loss, augment=augment, sample_frames=sample_frames, conv2d_gradfix=conv2d_gradfix,
                           grid_sample_gradfix=grid_sample_gradfix)


def official_cfg(*, num_frames: int = 3, z_dim: int = 512, w_dim: int = 512, motion_z_dim: int = 512,
                 motion_v_dim: int = 512, time_enc_dim: int = 256, mbstd_group_size: int = 4) -> dict:
    """The resolved experiment config (configs/model/base.yaml + stylegan-v.yaml) that the modules read."""
    sampling = dict(SAMPLING, num_frames_per_video=num_frames)
    generator = dict(
        source="networks", use_noise=False, w_dim=w_dim, z_dim=z_dim, c_dim=0, input=dict(type="temporal"),
        motion=dict(time_enc={}, z_dim=motion_z_dim, v_dim=motion_v_dim, motion_z_distance=16, gen_strategy="conv",
                    kernel_size=11, use_fractional_t=True, fourier=True),
        time_enc=dict(cond_type="concat_const", dim=time_enc_dim, min_period_len=16, max_period_len=1024,
                      phase_dropout_std=1.0),
        sampling=copy.deepcopy(sampling),
    )
    discriminator = dict(source="networks", mbstd_group_size=mbstd_group_size, sampling=copy.deepcopy(sampling),
                         concat_res=16, num_frames_div_factor=2, dummy_c=False)
    loss_kwargs = dict(source="StyleGAN2Loss", style_mixing_prob=0.0, pl_weight=0.0, motion_reg=dict(coef=0.0),
                       video_consistent_aug=True)
    return dict(model=dict(name="stylegan-v", generator=generator, discriminator=discriminator,
                           loss_kwargs=loss_kwargs, optim=dict(generator={}, discriminator={})),
                sampling=sampling)


class OfficialTrainer:
    """The official StyleGAN-V training loop, one iteration per :meth:`step` (one process, ``batch_gpu`` rounds)."""

    def __init__(self, mods: SimpleNamespace, *, resolution: int = 64, batch_size: int = 8, batch_gpu: int | None = None,
                 num_frames: int = 3, video_len: int = 1024, z_dim: int = 512, w_dim: int = 512,
                 motion_z_dim: int = 512, motion_v_dim: int = 512, time_enc_dim: int = 256, mapping_layers: int = 2,
                 channel_base: int = 16384, channel_max: int = 512, num_fp16_res: int = 4, conv_clamp: int | None = 256,
                 mbstd_group_size: int = 4, r1_gamma: float | None = None, lr: float = 0.0025,
                 betas: tuple[float, float] = (0.0, 0.99), g_reg_interval: int = 4, d_reg_interval: int = 16,
                 ema_kimg: float | None = None, ema_rampup: float | None = None, augpipe: str | None = "bgc",
                 augment_p: float = 0.0, ada_target: float | None = 0.6, ada_interval: int = 4, ada_kimg: float = 100,
                 device: str = "cpu", seed: int = 0, phase_sync: bool = False) -> None:
        self.mods = m = mods
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.batch_gpu = batch_gpu or batch_size
        self.num_frames = num_frames
        self.video_len = video_len
        self.resolution = resolution
        self.phase_sync = phase_sync and self.device.type == "cuda"
        # src/train.py, cfg 'auto'
        if r1_gamma is None:
            r1_gamma = 0.0002 * resolution ** 2 / batch_size
        self.ema_kimg = batch_size * 10 / 32 if ema_kimg is None else ema_kimg
        self.ema_rampup = ema_rampup
        self.ada_target, self.ada_interval, self.ada_kimg = ada_target, ada_interval, ada_kimg

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        # training_loop(): cuDNN autotuning without TF32, the gradfix ops (they only take effect on CUDA).
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        m.conv2d_gradfix.enabled = True
        m.grid_sample_gradfix.enabled = True

        cfg = m.OmegaConf.create(official_cfg(num_frames=num_frames, z_dim=z_dim, w_dim=w_dim,
                                              motion_z_dim=motion_z_dim, motion_v_dim=motion_v_dim,
                                              time_enc_dim=time_enc_dim, mbstd_group_size=mbstd_group_size))
        self.cfg = cfg
        common = dict(c_dim=0, img_resolution=resolution, img_channels=3)
        g_kwargs = dict(w_dim=w_dim, mapping_kwargs=dict(num_layers=mapping_layers, cfg=cfg.model.generator),
                        synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max,
                                              num_fp16_res=num_fp16_res, conv_clamp=conv_clamp),
                        cfg=cfg.model.generator)
        d_kwargs = dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
                        conv_clamp=conv_clamp, block_kwargs={}, mapping_kwargs=dict(num_layers=2),
                        epilogue_kwargs=dict(mbstd_group_size=min(self.batch_gpu, mbstd_group_size)),
                        cfg=cfg.model.discriminator)
        self.G = m.networks.Generator(**g_kwargs, **common).train().requires_grad_(False).to(self.device)
        self.D = m.networks.Discriminator(**d_kwargs, **common).train().requires_grad_(False).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()

        self.augment_pipe = None
        self.ada_stats = None
        if augpipe is not None and (augment_p > 0 or ada_target is not None):
            self.augment_pipe = m.augment.AugmentPipe(**AUGPIPE_SPECS[augpipe]).train().requires_grad_(False)
            self.augment_pipe.to(self.device)
            self.augment_pipe.p.copy_(torch.as_tensor(augment_p))
            if ada_target is not None:
                self.ada_stats = m.training_stats.Collector(regex="Loss/signs/real")

        self.loss = m.loss.StyleGAN2Loss(cfg=cfg, device=self.device, G_mapping=self.G.mapping,
                                         G_synthesis=self.G.synthesis, D=self.D, augment_pipe=self.augment_pipe,
                                         r1_gamma=r1_gamma, style_mixing_prob=0.0, pl_weight=0.0)
        self.phases = []
        for name, module, reg_interval in [("G", self.G, g_reg_interval), ("D", self.D, d_reg_interval)]:
            mb_ratio = reg_interval / (reg_interval + 1)
            opt = torch.optim.Adam(module.parameters(), lr=lr * mb_ratio, betas=[b ** mb_ratio for b in betas], eps=1e-8)
            self.phases += [SimpleNamespace(name=name + "main", module=module, opt=opt, interval=1),
                            SimpleNamespace(name=name + "reg", module=module, opt=opt, interval=reg_interval)]
        self.r1_gamma = r1_gamma
        self.cur_nimg = 0
        self.batch_idx = 0

    @property
    def num_parameters(self) -> tuple[int, int]:
        return (sum(p.numel() for p in self.G.parameters()), sum(p.numel() for p in self.D.parameters()))

    def random_batch(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Random uint8 clips [B, F, 3, R, R] and their frame times [B, F] (as the video dataset samples them)."""
        b, f, r = self.batch_size, self.num_frames, self.resolution
        img = torch.randint(0, 256, [b, f, 3, r, r], dtype=torch.uint8, generator=generator)
        t = np.stack([self.mods.sample_frames(self.cfg.sampling, total_video_len=self.video_len) for _ in range(b)])
        return img, torch.from_numpy(t)

    def _sync(self) -> None:
        if self.phase_sync:
            torch.cuda.synchronize(self.device)

    def step(self, real_img: torch.Tensor | None = None, real_t: torch.Tensor | None = None,
             on_part: Callable[[str], None] | None = None) -> dict[str, float]:
        """One iteration of the official loop; returns seconds spent per part ('data', phase names, 'ema', 'ada').

        ``on_part(name)`` is called at the end of each part (for a caller's own probes)."""
        m, dev, bs, bg = self.mods, self.device, self.batch_size, self.batch_gpu
        times: dict[str, float] = {}
        start = time.perf_counter()
        if real_img is None:
            real_img, real_t = self.random_batch()
        # data_fetch (the dataset's labels are empty: c_dim 0)
        phase_real_img = (real_img.to(dev).to(torch.float32) / 127.5 - 1).split(bg)
        phase_real_c = torch.zeros([bs, 0], device=dev).split(bg)
        phase_real_t = real_t.to(dev).split(bg)
        all_gen_z = torch.randn([len(self.phases) * bs, self.G.z_dim], device=dev)
        all_gen_z = [z.split(bg) for z in all_gen_z.split(bs)]
        all_gen_c = torch.zeros([len(self.phases) * bs, 0], device=dev)
        all_gen_c = [c.split(bg) for c in all_gen_c.split(bs)]
        all_gen_l = [min(self.video_len, self.G.sampling_dict["max_num_frames"]) for _ in range(len(self.phases) * bs)]
        all_gen_t = [m.sample_frames(self.G.sampling_dict, use_fractional_t=True, total_video_len=n) for n in all_gen_l]
        all_gen_t = torch.from_numpy(np.stack(all_gen_t)).to(dev)
        all_gen_t = [t.split(bg) for t in all_gen_t.split(bs)]
        self._sync()
        now = time.perf_counter()
        times["data"], start = now - start, now
        if on_part:
            on_part("data")

        for phase, phase_gen_z, phase_gen_c, phase_gen_t in zip(self.phases, all_gen_z, all_gen_c, all_gen_t):
            if self.batch_idx % phase.interval != 0:
                continue
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            phase.module.train()
            rounds = zip(phase_real_img, phase_real_c, phase_real_t, phase_gen_z, phase_gen_c, phase_gen_t)
            for round_idx, (real_img_, real_c, real_t_, gen_z, gen_c, gen_t) in enumerate(rounds):
                sync = round_idx == bs // bg - 1
                self.loss.accumulate_gradients(phase=phase.name, real_img=real_img_, real_c=real_c, real_t=real_t_,
                                               gen_z=gen_z, gen_c=gen_c, gen_t=gen_t, sync=sync, gain=phase.interval)
            phase.module.requires_grad_(False)
            for param in phase.module.parameters():
                if param.grad is not None:
                    m.misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            phase.opt.step()
            self._sync()
            now = time.perf_counter()
            times[phase.name], start = now - start, now
            if on_part:
                on_part(phase.name)

        # G_ema
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * self.ema_rampup)
        ema_beta = 0.5 ** (bs / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)
        self.cur_nimg += bs * self.num_frames
        self.batch_idx += 1
        self._sync()
        now = time.perf_counter()
        times["ema"], start = now - start, now

        # ADA heuristic
        if self.ada_stats is not None and self.batch_idx % self.ada_interval == 0:
            self.ada_stats.update()
            adjust = np.sign(self.ada_stats["Loss/signs/real"] - self.ada_target) * (bs * self.ada_interval) / (
                self.ada_kimg * 1000)
            self.augment_pipe.p.copy_((self.augment_pipe.p + adjust).max(m.misc.constant(0, device=dev)))
            self._sync()
            times["ada"] = time.perf_counter() - start
        if on_part:
            on_part("ema+ada")
        return times

    @property
    def augment_p(self) -> float:
        return float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0

    def describe(self) -> dict[str, Any]:
        return dict(r1_gamma=self.r1_gamma, ema_kimg=self.ema_kimg, ema_rampup=self.ema_rampup,
                    ada_target=self.ada_target, ada_kimg=self.ada_kimg, augment_p=self.augment_p)
