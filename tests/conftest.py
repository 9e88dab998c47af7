"""Shared test helpers: tiny components and real third-party plugin distributions."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from vgz import registry

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # The workers share the cores: each takes its share of threads, and so do the processes its tests
    # start (the environment is inherited). Two workers at one thread each run the suite in about 60% of
    # the time one process at two threads takes on a 2-core machine; at two threads each, no faster.
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(_threads)

    import torch

    torch.set_num_threads(_threads)


def make_plugin_dist(root: Path, dist: str, module: str, source: str, entry_name: str | None = None,
                     entry_value: str | None = None) -> Path:
    """Write an installed distribution (module + ``*.dist-info`` with a ``vgz.plugins`` entry point)
    into ``root``, exactly as pip leaves one in site-packages. Returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        f"[vgz.plugins]\n{entry_name or module} = {entry_value or module}\n"
    )
    (info / "RECORD").write_text("")
    (info / "INSTALLER").write_text("pip\n")
    return root


PLUGIN_SOURCE = '''
    from dataclasses import dataclass
    from typing import Any

    import torch
    from torch import nn

    import vgz
    from vgz.configs import ComponentConfig, config_field
    from vgz.modeling import ModelMixin


    @dataclass
    class ToyMotionConfig(ComponentConfig):
        dim: int = config_field(8, min=1)
        presets = {"tiny": {"dim": 4}}


    @vgz.register("motion", "toy-motion")
    class ToyMotion(ModelMixin):
        """A third-party motion module (test plugin)."""

        config_class = ToyMotionConfig

        def __init__(self, config=None, **kwargs):
            super().__init__(config, **kwargs)
            self.proj = nn.Linear(1, self.config.dim)

        def forward(self, t):
            return self.proj(t.unsqueeze(-1))

        def example_inputs(self, batch_size=2, generator=None):
            return {"t": torch.rand([batch_size, 3], generator=generator)}
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A real plugin distribution on sys.path, discovered through its entry point."""
    root = make_plugin_dist(tmp_path / "site", "vgz-toy-plugin", "vgz_toy_plugin", PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(root))
    registry.reload_plugins()
    yield root
    sys.modules.pop("vgz_toy_plugin", None)
    monkeypatch.undo()
    registry.reload_plugins()


def populate_hub_cache(cache_dir: Path, repo_id: str, folder: Path, commit: str = "0123456789abcdef" * 2 + "01234567",
                       ref: str = "main") -> Path:
    """Lay ``folder``'s files out in ``cache_dir`` the way a Hub download leaves them:
    ``models--org--name/{blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/<ref>}``."""
    import hashlib
    import os

    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


def build_plugin_wheel(out_dir: Path, dist: str, module: str, source: str) -> Path:
    """Build a pure-Python wheel of a plugin package (no build backend or network needed)."""
    import base64
    import hashlib
    import zipfile

    name = dist.replace("-", "_")
    info = f"{name}-0.1.0.dist-info"
    files = {
        f"{module}.py": textwrap.dedent(source),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\nRequires-Dist: vgz\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: vgz-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[vgz.plugins]\n{module} = {module}\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel
