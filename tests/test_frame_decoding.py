"""Frame folders of every common image mode decode to the right 8-bit RGB: 16-bit RGB, RGBA and grey
PNGs (written by hand with zlib: PIL cannot write 16-bit colour), 32-bit integer TIFFs, grey, grey +
alpha, RGBA, palette and 1-bit images, from a folder and from a zip."""

from __future__ import annotations

import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgz.data.datasets import DatasetWarning, open_dataset
from vgz.data.sampling import ClipSamplingConfig

SIZE = 8
RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
GREY8 = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
ALPHA8 = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
# A low byte that must not change the 8-bit value (16-bit frames keep their high byte).
LOW = RNG.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint16)


def png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit PNG of uint16 ``[H, W]`` (grey), ``[H, W, 2]`` (grey + alpha), ``[H, W, 3]`` (RGB) or
    ``[H, W, 4]`` (RGBA): signature, IHDR, one IDAT of unfiltered big-endian rows, IEND."""
    array = array.reshape(array.shape[0], array.shape[1], -1)
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def wide(values8: np.ndarray) -> np.ndarray:
    """8-bit values as 16-bit ones with an arbitrary low byte."""
    low = LOW[:, :, : values8.shape[2]] if values8.ndim == 3 else LOW[:, :, 0]
    return values8.astype(np.uint16) * 256 + low


def grey_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def write_modes(root: Path) -> dict[str, np.ndarray]:
    """One single-frame video per image mode; returns each video's expected uint8 RGB frame."""
    expected = {}

    def frame(name: str, write, want: np.ndarray) -> None:
        folder = root / name
        folder.mkdir(parents=True)
        write(folder)
        expected[name] = want

    frame("rgb8", lambda f: Image.fromarray(RGB8).save(f / "0.png"), RGB8)
    frame("rgb16", lambda f: png16(f / "0.png", wide(RGB8)), RGB8)
    rgba16 = np.concatenate([wide(RGB8), ALPHA8[:, :, None].astype(np.uint16) * 257], axis=2)
    frame("rgba16", lambda f: png16(f / "0.png", rgba16), RGB8)
    frame("grey16_png", lambda f: png16(f / "0.png", wide(GREY8)), grey_rgb(GREY8))
    grey_alpha16 = np.stack([wide(GREY8), ALPHA8.astype(np.uint16) * 257], axis=2)
    frame("grey_alpha16", lambda f: png16(f / "0.png", grey_alpha16), grey_rgb(GREY8))
    # PIL's own 16-bit grey ("I;16") PNG, and a 32-bit integer ("I") TIFF of 16-bit values.
    frame("i16_pil", lambda f: Image.fromarray(wide(GREY8)).save(f / "0.png"), grey_rgb(GREY8))
    frame("i32_tiff", lambda f: Image.fromarray(wide(GREY8).astype(np.int32)).save(f / "0.tif"),
          grey_rgb(GREY8))
    frame("grey8", lambda f: Image.fromarray(GREY8).save(f / "0.png"), grey_rgb(GREY8))
    frame("grey_alpha8", lambda f: Image.fromarray(np.stack([GREY8, ALPHA8], axis=2), "LA").save(f / "0.png"),
          grey_rgb(GREY8))
    frame("rgba8", lambda f: Image.fromarray(np.dstack([RGB8, ALPHA8])).save(f / "0.png"), RGB8)
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 200, 30], [250, 250, 250]], np.uint8)
    index = RNG.integers(0, 4, (SIZE, SIZE), dtype=np.uint8)

    def write_palette(folder: Path) -> None:
        image = Image.fromarray(index, "P")
        image.putpalette(palette.reshape(-1).tolist())
        image.save(folder / "0.png")

    frame("palette", write_palette, palette[index])
    bits = RNG.random((SIZE, SIZE)) < 0.5
    frame("bilevel", lambda f: Image.fromarray(bits).save(f / "0.png"), grey_rgb(bits.astype(np.uint8) * 255))
    return expected


def open_frames(spec) -> object:
    return open_dataset(spec, resolution=SIZE, sampling=ClipSamplingConfig.from_preset("image"))


def test_every_image_mode_decodes_to_its_8_bit_rgb(tmp_path):
    expected = write_modes(tmp_path / "frames")
    modes = {name: Image.open(next((tmp_path / "frames" / name).iterdir())).mode for name in expected}
    # What the files hold, as PIL opens them: the decoder must handle each of these modes.
    assert {modes["i16_pil"], modes["grey16_png"], modes["i32_tiff"]} <= {"I;16", "I"}
    assert {modes["palette"], modes["bilevel"], modes["grey_alpha8"], modes["rgba8"]} == {"P", "1", "LA", "RGBA"}
    archive = tmp_path / "frames.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "frames").rglob("*.*")):
            z.write(path, path.relative_to(tmp_path / "frames").as_posix())
    for spec in (tmp_path / "frames", archive):
        dataset = open_frames(spec)
        assert sorted(dataset.video_names) == sorted(expected)
        for i, name in enumerate(dataset.video_names):
            frames = dataset.read_frames(i, [0])  # uint8 [1, 3, H, W]
            got = frames[0].permute(1, 2, 0).numpy()
            assert got.dtype == np.uint8 and np.array_equal(got, expected[name]), (spec, name, modes[name])


def test_a_16_bit_grey_frame_is_not_white(tmp_path):
    """The reported symptom: a mid-grey 16-bit frame read as almost white (mean 254/255)."""
    folder = tmp_path / "frames" / "clip"
    folder.mkdir(parents=True)
    ramp = np.linspace(0, 65535, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.uint16)
    for j in range(3):
        Image.fromarray(ramp // (j + 1)).save(folder / f"{j}.png")
    frames = open_frames(tmp_path / "frames").read_frames(0, [0, 1, 2]).float()
    means = frames.mean(dim=(1, 2, 3)).tolist()
    assert means == pytest.approx([127.5, 63.5, 42.2], abs=1.0)


def test_frames_of_unknown_range_are_refused_by_name(tmp_path):
    root = tmp_path / "frames"
    (root / "float").mkdir(parents=True)
    Image.fromarray(np.full((SIZE, SIZE), 0.5, np.float32)).save(root / "float" / "0.tif")
    (root / "wide").mkdir()
    Image.fromarray(np.full((SIZE, SIZE), 70000, np.int32)).save(root / "wide" / "0.tif")
    dataset = open_frames(root)
    with pytest.raises(ValueError, match=r"float.0\.tif: expected 8- or 16-bit integer frames, found 32-bit float"):
        dataset.read_frames(dataset.video_names.index("float"), [0])
    with pytest.raises(ValueError, match=r"wide.0\.tif: expected 16-bit grey values 0\.\.65535 \(mode I\), "
                                         r"found 70000\.\.70000"):
        dataset.read_frames(dataset.video_names.index("wide"), [0])
    # In training, such a video is skipped with one warning that says why, not a crash.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Exception, match="2 of 2 videos failed to decode"):
            dataset[0]
    reported = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(reported) == 1 and ("32-bit float" in reported[0] or "0..65535" in reported[0])
