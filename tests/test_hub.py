"""Sharing on the Hub: `vgz push` and `push_to_hub` make one commit with weights, configs and a card
with model-index; what they upload, laid out as a Hub download leaves it, loads offline by repo id and
gives the same frames.

Uploads cannot run here: ``HfApi.create_repo``/``create_commit`` are replaced by a recorder (the only
mock in the tests), which keeps the commit's files byte for byte.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vgz.cli.main import app
from vgz.pipelines import VideoPipeline

runner = CliRunner()


class Recorder:
    """Stands in for the Hub: records repos created and the files of each commit."""

    def __init__(self):
        self.repos: list[tuple[str, dict]] = []
        self.commits: list[dict] = []

    def install(self, monkeypatch):
        from huggingface_hub import HfApi

        recorder = self

        def create_repo(api, repo_id, **kwargs):
            recorder.repos.append((repo_id, kwargs))

        def create_commit(api, repo_id, operations, **kwargs):
            files = {}
            for op in operations:
                source = op.path_or_fileobj
                files[op.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
            recorder.commits.append({"repo_id": repo_id, "files": files, **kwargs})
            return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/recorded"})()

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "create_commit", create_commit)
        return self

    def as_folder(self, root: Path, commit: int = -1) -> Path:
        for name, data in self.commits[commit]["files"].items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return root


@pytest.fixture
def hub(monkeypatch):
    return Recorder().install(monkeypatch)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real (tiny) training run, evaluated with a random-weight I3D so that its card has results."""
    from accelerate.state import AcceleratorState

    from vgz.cards import write_eval_results
    from vgz.metrics import evaluate
    from vgz.metrics.detectors import randomize_
    from vgz.metrics.i3d import I3DDetector
    from vgz.training import build_trainer

    run = tmp_path_factory.mktemp("run") / "shapes"
    AcceleratorState._reset_state(reset_partial_state=True)
    trainer = build_trainer("styleganv", preset="tiny", data="synthetic:shapes?num_videos=8&num_frames=24", outdir=run,
                            overrides={"batch_size": 4, "mbstd_group_size": 2},
                            run_overrides={"steps": 2, "num_workers": 0, "progress": False, "sample_frames": 2,
                                           "checkpoint_every": 2, "sample_every": 2})
    trainer.train()
    AcceleratorState._reset_state(reset_partial_state=True)
    report = evaluate(run / "pipeline", "synthetic:shapes?num_videos=3&num_frames=16", ["fvd16"],
                      detectors=[randomize_(I3DDetector())], num_videos=2, num_workers=0, cache_dir=False,
                      progress=False)
    write_eval_results(run / "pipeline", report)
    return run


def test_vgz_push_makes_one_commit_with_weights_configs_and_card(trained_run, hub):
    result = runner.invoke(app, ["push", str(trained_run), "vgz-test/shapes-tiny", "-m", "first upload"])
    assert result.exit_code == 0, result.output
    assert "https://huggingface.co/vgz-test/shapes-tiny" in result.output
    assert [r for r, _ in hub.repos] == ["vgz-test/shapes-tiny"] and len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit["commit_message"] == "first upload"
    pipeline = trained_run / "pipeline"
    local = {p.relative_to(pipeline).as_posix() for p in pipeline.rglob("*") if p.is_file()}
    assert set(commit["files"]) == local  # every file of the pipeline folder, nothing else
    assert {"model_index.json", "mapping/model.safetensors", "motion/config.json", "synthesis/model.safetensors",
            "README.md"} <= set(commit["files"])
    for name in ("synthesis/model.safetensors", "model_index.json"):
        assert commit["files"][name] == (pipeline / name).read_bytes()

    from huggingface_hub import ModelCard

    card = ModelCard(commit["files"]["README.md"].decode())
    assert card.data.library_name == "vgz" and "vgz" in card.data.tags
    assert [r.metric_config for r in card.data.eval_results] == ["fvd2048_16f"]
    assert 'from_pretrained("vgz-test/shapes-tiny")' in card.text  # usage points at the repo
    assert "for 2 steps of 4 clips" in card.text  # the run's training, filled in
    assert (pipeline / "README.md").read_text() != card.content  # the local folder is left as it was


def test_push_to_hub_then_load_offline_gives_identical_frames(hub, tmp_path, monkeypatch):
    from conftest import populate_hub_cache

    torch.manual_seed(0)
    pipe = VideoPipeline.from_pretrained(_tiny(tmp_path))
    pipe.push_to_hub("vgz-test/tiny", description="A tiny test model.")
    files = hub.commits[0]["files"]
    assert "README.md" in files and "A tiny test model." in files["README.md"].decode()
    # The commit, laid out as snapshot_download leaves it (blobs, snapshots/<commit>, refs/main).
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "vgz-test/tiny", hub.as_folder(tmp_path / "uploaded"),
                       commit=hashlib.sha1(b"recorded").hexdigest())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = VideoPipeline.from_pretrained("vgz-test/tiny", cache_dir=cache)
    assert torch.equal(loaded(num_frames=5, generator=3).frames, pipe(num_frames=5, generator=3).frames)
    component = type(pipe.synthesis).from_pretrained("vgz-test/tiny", subfolder="synthesis", cache_dir=cache,
                                                      local_files_only=True)
    assert all(torch.equal(a, b) for a, b in zip(component.state_dict().values(), pipe.synthesis.state_dict().values()))


def test_push_errors_are_clear(tmp_path, hub):
    result = runner.invoke(app, ["push", str(tmp_path), "vgz-test/x"])
    assert result.exit_code == 1 and "expected a saved pipeline" in result.output
    result = runner.invoke(app, ["push", str(_tiny(tmp_path)), "not a repo"])
    assert result.exit_code == 1 and "org/name" in result.output
    assert hub.commits == []


def _tiny(tmp_path: Path) -> Path:
    from vgz.pipelines.styleganv import StyleGANVPipeline

    folder = tmp_path / "tiny"
    if not (folder / "model_index.json").is_file():
        StyleGANVPipeline.from_preset("tiny").save_pretrained(folder)
    return folder



def _push(folder: Path, **env: str):
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT")}
    return subprocess.run([sys.executable, "-m", "vgz", "push", str(folder), "vgz-test/x", "--token", "hf_test"],
                          capture_output=True, text=True, env={**environ, **env}, timeout=120)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_push_without_the_hub_is_one_error_line(tmp_path):
    """Offline mode, a refused connection and an error status are `error:` lines, not tracebacks."""
    import http.server
    import threading

    folder = _tiny(tmp_path)
    out = _push(folder, HF_HUB_OFFLINE="1")
    assert out.returncode == 1 and out.stderr.startswith("error: could not reach the Hugging Face Hub"), out.stderr
    assert "HF_HUB_OFFLINE is set" in out.stderr and len(out.stderr.splitlines()) == 1
    out = _push(folder, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("error: could not reach the Hugging Face Hub to push") and \
        "HF_HUB_OFFLINE" in out.stderr and len(out.stderr.splitlines()) == 1

    class Unauthorized(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = b'{"error": "Invalid credentials in Authorization header"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = _push(folder, HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("error: the Hugging Face Hub refused to push") and "check the token" in out.stderr
