"""Per-pixel noise inputs of StyleGAN synthesis layers.

``noise_mode`` selects the noise:

* ``"random"``: fresh Gaussian noise per sample (drawn from ``generator`` when given);
* ``"const"``: the layer's fixed ``noise_const`` buffer, the same for every sample;
* ``"none"``: no noise.

Each mode is scaled by the layer's learned ``noise_strength``.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["NoiseMode", "NOISE_MODES", "noise_input"]

NoiseMode = Literal["random", "const", "none"]
NOISE_MODES: tuple[str, ...] = ("random", "const", "none")


def noise_input(
    noise_mode: str,
    batch_size: int,
    resolution: int,
    noise_const: torch.Tensor,
    noise_strength: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    """The noise to add after a synthesis conv: ``[N, 1, res, res]``, ``[res, res]`` or None."""
    if noise_mode == "random":
        device = noise_const.device
        noise = torch.randn([batch_size, 1, resolution, resolution], device=device, generator=generator)
        return noise * noise_strength
    if noise_mode == "const":
        return noise_const * noise_strength
    if noise_mode == "none":
        return None
    raise ValueError(f"noise_mode must be one of {', '.join(map(repr, NOISE_MODES))}, got {noise_mode!r}")
