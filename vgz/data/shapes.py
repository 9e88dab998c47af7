"""``synthetic-shapes``: procedural videos of coloured shapes moving over drifting textures.

Each video is a pure function of ``(seed, video index)``: a background of a few plane waves (smooth
noise, gradients, sometimes stripes) whose phases drift over time, under 1-4 shapes (circles,
polygons, rings, flowers) that glide along smooth paths while they grow and shrink, turn and change
colour. Any resolution and any length; only the frames asked for are rendered (a 3-frame clip of a
1000-frame video costs 3 frames), in numpy, with one pixel of antialiasing from signed distances.

It needs no files, so it feeds CPU smoke tests, benchmarks and quick training runs::

    dataset = open_dataset("synthetic:shapes?num_videos=64&num_frames=100", resolution=64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from vgz.configs import config_field
from vgz.data.base import DatasetConfig, DatasetError, VideoDataset
from vgz.registry import register

__all__ = ["ShapesConfig", "SyntheticShapesDataset", "SHAPE_KINDS"]

#: Sides of each kind of shape (0: a circle, -1: a ring, -5: a five-petal flower).
SHAPE_KINDS = {"circle": 0, "triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6, "ring": -1, "flower": -5}
_NUM_WAVES = 3  # plane waves per background field


@dataclass
class ShapesConfig(DatasetConfig):
    """Config of :class:`SyntheticShapesDataset`."""

    path: str = config_field("synthetic:shapes", help="unused (the data is procedural)")
    num_videos: int = config_field(1024, min=1)
    num_frames: int = config_field(256, min=1, help="frames per video")
    fps: float = config_field(25.0, min=1e-3, help="frames per second: sets how far things move per frame")
    num_shapes: tuple[int, int] = config_field((1, 4), min=0, help="fewest and most shapes per video")

    def check(self) -> None:
        if self.num_shapes[0] > self.num_shapes[1]:
            self.fail("num_shapes", "(fewest, most) with fewest <= most")


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Arrays of hue (turns, any real), saturation and value in [0, 1] -> RGB ``[..., 3]``."""
    k = (np.array([5.0, 3.0, 1.0]) + (np.asarray(h)[..., None] % 1.0) * 6) % 6
    ramp = np.clip(np.minimum(k, 4 - k), 0, 1)
    return np.asarray(v)[..., None] * (1 - np.asarray(s)[..., None] * ramp)


class _Video:
    """The random parameters of one video (everything that does not depend on time)."""

    def __init__(self, seed: int, index: int, num_shapes: tuple[int, int]):
        rng = np.random.default_rng([seed, 7, index])
        u = rng.uniform
        # Background: two fields of plane waves; the first blends two colours, the second tints.
        hue = u()
        self.colours = _hsv_to_rgb(np.array([hue, hue + u(0.15, 0.5), u()]), np.array([u(0.3, 0.8), u(0.3, 0.8), 0.6]),
                                   np.array([u(0.2, 0.5), u(0.55, 0.85), 0.8]))
        angle = u(0, 2 * np.pi, (2, _NUM_WAVES))
        freq = u(0.4, 2.5, (2, _NUM_WAVES))  # cycles per image
        if u() < 0.4:  # stripes
            freq[1, 0] = u(5, 10)
        self.wave_kx, self.wave_ky = freq * np.cos(angle), freq * np.sin(angle)
        self.wave_amp = u(0.4, 1.0, (2, _NUM_WAVES))
        self.wave_amp /= self.wave_amp.sum(1, keepdims=True)
        self.wave_phase = u(0, 2 * np.pi, (2, _NUM_WAVES))
        self.wave_speed = u(-0.25, 0.25, (2, _NUM_WAVES))  # cycles per second
        self.light = u(0, 2 * np.pi)
        # Shapes.
        n = int(rng.integers(num_shapes[0], num_shapes[1] + 1))
        kinds = list(SHAPE_KINDS.values())
        self.sides = [kinds[j] for j in rng.integers(len(kinds), size=n)]
        self.centre = u(0.3, 0.7, (n, 2))
        self.amp = np.stack([u(0.05, 0.22, (n, 2)), u(0.0, 0.07, (n, 2))])  # slow and fast sway
        self.freq = np.stack([u(0.05, 0.3, (n, 2)), u(0.2, 0.6, (n, 2))])  # Hz
        self.phase = u(0, 2 * np.pi, (2, n, 2))
        self.radius = u(0.07, 0.17, n)
        self.pulse = np.stack([u(0.0, 0.3, n), u(0.05, 0.4, n), u(0, 2 * np.pi, n)])  # amplitude, Hz, phase
        self.angle = u(0, 2 * np.pi, n)
        self.spin = u(-1.2, 1.2, n)  # radians per second
        self.hue = u(0, 1, n)
        self.hue_speed = u(-0.08, 0.08, n)  # turns per second
        self.sat, self.val = u(0.55, 0.95, n), u(0.75, 1.0, n)

    def background(self, t: np.ndarray, resolution: int) -> np.ndarray:
        """float32 ``[k, 3, R, R]`` at times ``t [k]`` (seconds)."""
        x = (np.arange(resolution) + 0.5) / resolution
        fields = []
        for f in range(2):
            # sin(ax + by + c(t)) = S cos c + C sin c with S = sin(ax + by), C = cos(ax + by), and S, C
            # from 1-D sines by the angle-sum rule: no per-pixel transcendental at all.
            ax = 2 * np.pi * self.wave_kx[f][:, None] * x  # [W, R]
            by = 2 * np.pi * self.wave_ky[f][:, None] * x
            sa, ca, sb, cb = (a.astype(np.float32) for a in (np.sin(ax), np.cos(ax), np.sin(by), np.cos(by)))
            phase = self.wave_phase[f] + 2 * np.pi * self.wave_speed[f] * t[:, None]  # [k, W]
            cos_c = (np.cos(phase) * self.wave_amp[f]).astype(np.float32)
            sin_c = (np.sin(phase) * self.wave_amp[f]).astype(np.float32)
            field = np.zeros((len(t), resolution, resolution), np.float32)
            for w in range(_NUM_WAVES):
                s = np.outer(cb[w], sa[w]) + np.outer(sb[w], ca[w])
                c = np.outer(cb[w], ca[w]) - np.outer(sb[w], sa[w])
                field += cos_c[:, w, None, None] * s + sin_c[:, w, None, None] * c
            fields.append(field[:, None])  # [k, 1, R, R]
        blend = np.tanh(1.5 * fields[0]) * 0.5 + 0.5
        a, b, tint = (c.astype(np.float32)[:, None, None] for c in self.colours)  # [3, 1, 1]
        return a + (b - a) * blend + fields[1] * (0.25 * (tint - 0.5))

    def draw_shapes(self, image: np.ndarray, t: float) -> None:
        """Composite the shapes at time ``t`` onto ``image [3, R, R]`` (in place)."""
        res = image.shape[-1]
        sway = self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)  # [2, n, 2]: slow and fast
        centres = self.centre + sway[0] + sway[1]
        for j, sides in enumerate(self.sides):
            cx, cy = centres[j]
            amp, hz, ph = self.pulse[:, j]
            r = self.radius[j] * (1 + amp * math.sin(2 * math.pi * hz * t + ph))
            rot = self.angle[j] + self.spin[j] * t
            colour = _hsv_to_rgb(self.hue[j] + self.hue_speed[j] * t, self.sat[j], self.val[j])
            colour = colour.astype(np.float32)[:, None, None]
            # Only the shape's bounding box (plus a pixel for the antialiased edge) is touched.
            x0, x1 = max(0, int((cx - r) * res) - 1), min(res, int((cx + r) * res) + 2)
            y0, y1 = max(0, int((cy - r) * res) - 1), min(res, int((cy + r) * res) + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            u = ((np.arange(x0, x1) + 0.5) / res - cx).astype(np.float32)[None, :]
            v = ((np.arange(y0, y1) + 0.5) / res - cy).astype(np.float32)[:, None]
            dist = np.sqrt(u * u + v * v)
            ang = np.arctan2(v, u) - rot
            if sides == 0:  # circle
                sdf = dist - r
            elif sides == -1:  # ring
                sdf = np.abs(dist - 0.75 * r) - 0.25 * r
            elif sides < 0:  # flower: a radius that waves with the angle
                sdf = dist - r * (0.72 + 0.28 * np.cos(-sides * ang))
            else:  # regular polygon, circumradius r: distance to the nearest edge's line
                sector = 2 * np.pi / sides
                sdf = dist * np.cos(np.mod(ang, sector) - sector / 2) - r * math.cos(math.pi / sides)
            alpha = np.clip(0.5 - sdf * res, 0, 1)  # one pixel of antialiasing
            shade = 0.85 + 0.3 * np.clip((u * math.cos(self.light) + v * math.sin(self.light)) / r, -1, 1)
            patch = image[:, y0:y1, x0:x1]
            patch += alpha * (colour * shade - patch)


@register("dataset", "synthetic-shapes")
class SyntheticShapesDataset(VideoDataset):
    """Procedural videos of coloured shapes moving over drifting textures (no files needed)."""

    config_class = ShapesConfig

    def _index(self) -> None:
        cfg = self.config
        if cfg.num_frames < self.min_video_len:
            raise DatasetError(f"{cfg.path}: expected videos of at least {self.min_video_len} frames for the clip "
                               f"sampling, found num_frames={cfg.num_frames}")
        for i in range(cfg.num_videos):
            self._add_video(f"synthetic:shapes/{i:06d}", cfg.num_frames, name=f"{i:06d}")

    def _content_key(self) -> str:
        # The videos are a function of these fields (and of the renderer's code).
        cfg = self.config
        return f"seed={cfg.seed} fps={cfg.fps} num_shapes={cfg.num_shapes}"

    def _content_digest(self, video_idx: int) -> bytes:
        return b""

    def render(self, video_idx: int, frame_indices: Sequence[int]) -> np.ndarray:
        """float32 ``[k, 3, R, R]`` in about [0, 1]: frames ``frame_indices`` of video ``video_idx``."""
        cfg = self.config
        video = _Video(cfg.seed, video_idx, cfg.num_shapes)
        t = np.asarray(frame_indices, dtype=np.float64).reshape(-1) / cfg.fps
        images = video.background(t, self.resolution)
        for image, time in zip(images, t):
            video.draw_shapes(image, float(time))
        return images

    def read_frames(self, video_idx: int, frame_indices: Sequence[int]) -> torch.Tensor:
        """uint8 ``[k, 3, R, R]``, rendered at the training resolution."""
        indices = np.asarray(frame_indices).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.config.num_frames):
            raise IndexError(f"frame indices {indices.tolist()} out of range [0, {self.config.num_frames})")
        images = self.render(video_idx, indices)
        images *= 255
        images += 0.5
        return torch.from_numpy(np.clip(images, 0, 255, out=images).astype(np.uint8))

    def _decode(self, video_idx: int, frame_indices: np.ndarray) -> Any:  # pragma: no cover - read_frames renders
        raise NotImplementedError
