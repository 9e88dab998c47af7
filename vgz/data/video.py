"""Video files in and out, through PyAV (FFmpeg), in vgz's frame layout.

Frames are ``[T, C, H, W]`` (one video) as float in ``[0, 1]`` or uint8 in ``[0, 255]``, torch or
numpy. Writing streams: :class:`VideoWriter` takes chunks of frames, so a video of any length is
written with constant memory, and the file appears under its name only once it is complete.

Containers and codecs, chosen by the file's suffix:

* ``.mp4``, ``.mkv``, ``.mov``: H.264 (``libx264``, yuv420p, or yuv444p for odd sizes);
  ``lossless=True`` uses ``libx264rgb`` at crf 0, which decodes to exactly the frames written;
* ``.gif``: GIF, each frame with its own 256-colour palette (median cut).
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from vgz.utils import atomic_path

__all__ = ["VideoWriter", "export_video", "read_video", "raw_to_uint8", "to_uint8_frames", "tile_videos"]

_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".gif": "gif"}


def raw_to_uint8(raw: torch.Tensor) -> torch.Tensor:
    """Generator output x in [-1, 1] -> uint8 exactly as StyleGAN-V's (and StyleGAN2-ADA's) metric code
    converts it: ``(x * 127.5 + 128).clamp(0, 255)``, truncated, in float32. Mathematically
    ``floor(255 (x + 1) / 2 + 0.5)``, but computed from ``(x + 1) / 2`` in float32 that comes out one
    lower at most exact rounding boundaries, so metrics take the generator's own output."""
    return (raw.float() * 127.5 + 128).clamp_(0, 255).to(torch.uint8)


def to_uint8_frames(frames: Any) -> np.ndarray:
    """Frames ``[T, C, H, W]`` (torch/numpy, float in [0, 1] or uint8; or a list of PIL images) ->
    uint8 numpy ``[T, H, W, C]`` (what encoders take)."""
    if isinstance(frames, (list, tuple)) and frames and hasattr(frames[0], "convert"):
        return np.stack([np.asarray(im.convert("RGB")) for im in frames])
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        if frames.is_floating_point():
            frames = (frames.float() * 255).round().clamp(0, 255).to(torch.uint8)
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be [time, channels, height, width] (one video), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        if not np.issubdtype(frames.dtype, np.floating):
            raise ValueError(f"frames must be float in [0, 1] or uint8, got dtype {frames.dtype}")
        frames = np.clip(np.rint(frames.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    if frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must have 1 or 3 channels in dim 1 ([T, C, H, W]), got shape {frames.shape}")
    frames = frames.transpose(0, 2, 3, 1)
    if frames.shape[3] == 1:
        frames = np.repeat(frames, 3, axis=3)
    return np.ascontiguousarray(frames)


def tile_videos(videos: torch.Tensor, rows: int) -> torch.Tensor:
    """``[B, T, C, H, W]`` -> one video ``[T, C, rows*H, (B/rows)*W]``, videos row by row."""
    from einops import rearrange

    if videos.ndim != 5 or videos.shape[0] % rows:
        raise ValueError(f"videos must be [B, T, C, H, W] with B a multiple of rows={rows}, got {tuple(videos.shape)}")
    return rearrange(videos, "(r k) t c h w -> t c (r h) (k w)", r=rows)


def _rate(fps: float) -> Fraction:
    """``fps`` as the rational frame rate a container stores (denominator <= 1001)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.integer, np.floating)) \
            or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be > 0 and finite, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    if rate == 0:
        raise ValueError(f"fps={fps!r} is too low for a video file: the lowest frame rate it can store is 1/1001")
    return rate


class VideoWriter:
    """Write a video chunk by chunk; the file is renamed into place on :meth:`close`.

    >>> with VideoWriter("out.mp4", fps=25) as writer:
    ...     for chunk in chunks:          # [t, C, H, W] each
    ...         writer.write(chunk)

    Args:
        path: ``.mp4``, ``.mkv``, ``.mov`` or ``.gif``.
        fps: frames per second of the file.
        lossless: exact frames (``libx264rgb`` crf 0; not for ``.gif``).
        crf: H.264 quality when not lossless (lower is better; 18 is visually lossless).
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, lossless: bool = False, crf: int = 18):
        import av

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CONTAINERS:
            raise ValueError(f"{self.path}: unsupported video suffix {suffix!r}; use one of {', '.join(_CONTAINERS)}")
        if lossless and suffix == ".gif":
            raise ValueError(f"{self.path}: GIF has a 256-colour palette and cannot be lossless; use .mp4 or .mkv")
        self.fps, self.lossless, self.crf = _rate(fps), lossless, crf
        self.num_frames = 0
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        self._container = av.open(str(tmp), mode="w", format=_CONTAINERS[suffix])
        self._stream: Any = None
        self._gif = suffix == ".gif"

    def _open_stream(self, height: int, width: int) -> None:
        if self._gif:
            codec, pix_fmt, options = "gif", "pal8", {}
        elif self.lossless:
            codec, pix_fmt, options = "libx264rgb", "rgb24", {"crf": "0"}
        else:
            # yuv420p plays everywhere but halves chroma resolution, so it needs even sizes.
            even = height % 2 == 0 and width % 2 == 0
            codec, pix_fmt, options = "libx264", "yuv420p" if even else "yuv444p", {"crf": str(self.crf)}
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
        self._stream.options = options

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` once the first frames are written."""
        return None if self._stream is None else (self._stream.height, self._stream.width)

    def write(self, frames: Any) -> None:
        """Append frames ``[t, C, H, W]`` (see :func:`to_uint8_frames` for accepted types)."""
        import av

        array = to_uint8_frames(frames)
        if self._stream is None:
            self._open_stream(array.shape[1], array.shape[2])
        elif (array.shape[1], array.shape[2]) != (self._stream.height, self._stream.width):
            raise ValueError(f"{self.path}: frames are {array.shape[1]}x{array.shape[2]}, but the video is "
                             f"{self._stream.height}x{self._stream.width}")
        for image in array:
            frame = _palette_frame(image) if self._gif else av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.num_frames += len(array)

    def close(self) -> Path:
        """Flush the encoder and move the finished file to ``path``."""
        if self._container is None:
            return self.path
        try:
            if self._stream is None:
                raise ValueError(f"{self.path}: no frames were written")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException as exc:
            self._abort(exc)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def _abort(self, exc: BaseException) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the original error matters, not this one
                pass
            self._container = None
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            if self._container is not None:
                self._abort(exc)
            return
        self.close()


def _palette_frame(image: np.ndarray) -> Any:
    """An RGB image as a paletted frame with its own 256 colours (FFmpeg's fixed rgb8 palette bands)."""
    import av
    from PIL import Image

    quantized = Image.fromarray(image).quantize(256)
    colours = np.asarray(quantized.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), dtype=np.uint8)
    palette[:, 0] = 255  # ARGB, opaque
    palette[: len(colours), 1:] = colours
    return av.VideoFrame.from_ndarray((np.asarray(quantized), palette), format="pal8")


def export_video(frames: Any, path: str | os.PathLike, fps: float = 25, *, lossless: bool = False,
                 crf: int = 18) -> Path:
    """Write one video to ``path`` (``.mp4``/``.mkv``/``.mov``/``.gif``, chosen by suffix).

    Args:
        frames: ``[T, C, H, W]`` or ``[1, T, C, H, W]`` float in [0, 1] or uint8 (torch or numpy), or
            a list of PIL images. Tile a batch into one video with :func:`tile_videos` first.
        fps: frames per second.
        lossless: write exactly these frames (H.264 RGB at crf 0).

    Returns:
        The path written.
    """
    if isinstance(frames, (torch.Tensor, np.ndarray)) and frames.ndim == 5:
        if frames.shape[0] != 1:
            raise ValueError(f"export_video writes one video, got a batch of {frames.shape[0]} "
                             "([B, T, C, H, W]); pick one or tile them with vgz.tile_videos(frames, rows)")
        frames = frames[0]
    with VideoWriter(path, fps, lossless=lossless, crf=crf) as writer:
        writer.write(frames)
    return Path(path)


def read_video(path: str | os.PathLike, *, frames: Iterable[int] | None = None
               ) -> tuple[torch.Tensor, float]:
    """Decode a video: ``(uint8 frames [T, C, H, W], fps)``; ``frames`` picks frame indices."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            wanted = None if frames is None else set(frames)
            decoded = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream))
                       if wanted is None or i in wanted]
    except av.error.FFmpegError as exc:
        raise ValueError(f"could not decode {path}: {exc}") from None
    if not decoded:
        raise ValueError(f"{path} holds no decodable frames")
    array = np.stack(decoded).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array)), fps
