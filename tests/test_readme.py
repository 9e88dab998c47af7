"""The README's Python example runs as written (on a tiny pipeline saved under the README's folder name)."""

from __future__ import annotations

from pathlib import Path

import vgz

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_pipeline_example_runs(tmp_path, monkeypatch):
    block = README.read_text().split("## Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "VideoPipeline.from_pretrained" in block
    monkeypatch.chdir(tmp_path)
    vgz.create("pipeline", "styleganv", preset="tiny").save_pretrained("sky-timelapse")
    exec(compile(block.replace("90_000", "300"), str(README), "exec"), {})  # an hour takes minutes; see benchmarks/
    assert {"grid.mp4", "hour.mp4", "my-pipeline"} <= {p.name for p in tmp_path.iterdir()}
    frames, fps = vgz.read_video(tmp_path / "hour.mp4")
    assert frames.shape == (300, 3, 16, 16) and fps == 25
