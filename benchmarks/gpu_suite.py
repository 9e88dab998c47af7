"""Every GPU figure vgz owes, measured in one run: generation, training, fp16 loss scaling, detectors.

    python benchmarks/gpu_suite.py --out gpu_suite.json                       # a GPU: under 9 minutes
    python benchmarks/gpu_suite.py --out gpu_suite.json --official .official/stylegan-v
    python benchmarks/gpu_suite.py --smoke --jobs 2 --out r.json              # tiny sizes, any machine

Parts (each in a process of its own, stopped at its own time budget so that a slow part cannot eat
the others' time; what it measured before that is kept):

  generate   StyleGAN-V 256x256 through the pipeline, 16 and 128 frames, 1 and 8 videos per call:
             fp32, mixed (the release: fp16 in the 4 highest resolutions), bf16, fp16, channels-last;
             frames/s, peak memory, largest difference from fp32
  compile    the same with ``pipe.synthesis.compile()``, shape by shape while its budget lasts
  official   universome/stylegan-v's generator on the same weights (``--official PATH``), for the ratio
  train      the StyleGAN-V training step at 256x256, --mixed-precision fp16 and bf16, at the batch
             that fills the GPU: clips/s, memory per clip, each phase's peak
  fp16       a few hundred fp16 steps with R1: finite losses, a working loss scaler, R1 unscaled
  detectors  I3D clips/s and Inception frames/s, contiguous and channels-last
  inversion  pSp's W+ and W encoders (images/s, fp32 and bf16) and the psp pipeline's encode + decode
  styleinv   StyleInV (ffs architecture) 16-frame videos, 1 and 8 per call, fp32 and mixed
  styleinv-train  StyleInV's training step (SI, D, R1) at 4 and 8 clips: memory per video (paper: 2.85 GB)
  stylevideogan  StyleVideoGAN's critic and generator steps in W+ at the paper's sizes (sequences/s, the
             paper's schedule against its ~6 h), and 256x256 generation with rendering (frames/s)

The results go to ``--out`` as JSON (the machine, torch/CUDA versions, the vgz commit, each part's
status and records) and are printed as Markdown tables for BENCHMARKS.md. ``--smoke`` runs every
part at tiny sizes in seconds (the test suite does, so the script cannot rot); on a CPU the fp16
part emulates loss scaling in float32 with ``torch.amp.GradScaler('cpu')``. See benchmarks/README.md
for running it on a lent GPU machine in one call.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name: (function, budget in seconds on a GPU, what it measures). The budgets sum to about 8.4
# minutes with --official (7.6 without); each includes the part's start (torch import, CUDA init).
# Set from the first H200 run (2026-11-29, BENCHMARKS.md): fp16 needs ~75 s for its 200 steps;
# generate, detectors, inversion, styleinv and official used half their first budgets or less.
# ``official`` runs last: its CUDA plugins build (nvcc) on the CPU while the other parts run.
PARTS: dict[str, tuple[str, float, str]] = {
    "generate": ("suite.generate:generate", 60, "StyleGAN-V generation at every precision"),
    "compile": ("suite.generate:compiled", 85, "generation with torch.compile"),
    "train": ("suite.train:train", 100, "the StyleGAN-V training step at a batch that fills the GPU"),
    "fp16": ("suite.train:fp16", 85, "fp16 loss scaling with R1"),
    "detectors": ("suite.detectors:detectors", 20, "I3D and Inception throughput"),
    "inversion": ("suite.inversion:inversion", 20, "pSp encoders and the psp pipeline"),
    "styleinv": ("suite.styleinv:generate", 20, "StyleInV generation, fp32 and mixed"),
    "styleinv-train": ("suite.styleinv:train", 35, "StyleInV's training step: memory per video"),
    "stylevideogan": ("suite.stylevideogan:stylevideogan", 30, "StyleVideoGAN: W+ training steps, generation"),
    "official": ("suite.generate:official", 50, "the official StyleGAN-V generator on the same weights"),
}
SMOKE_BUDGET_S = 240.0  # per part: a guard only (the smoke parts take seconds)
GRACE_S = 10.0  # a part is killed up to this long after its budget (it stops starting measurements before)
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------- the machine

def vgz_commit(given: str | None) -> dict[str, Any]:
    """The vgz commit measured: ``--commit``, else ``git rev-parse HEAD`` (and whether the tree had changes)."""
    if given:
        return dict(commit=given, dirty=None)
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True, check=True)
        return dict(commit=head.stdout.strip(), dirty=bool(status.stdout.strip()))
    except (OSError, subprocess.CalledProcessError):
        return dict(commit="unknown (no git here: pass --commit)", dirty=None)


def machine(device: str, commit: str | None) -> dict[str, Any]:
    import torch

    import vgz

    info: dict[str, Any] = dict(device=device, python=platform.python_version(), platform=platform.platform(),
                                cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                                torch=torch.__version__, cuda=torch.version.cuda, vgz=vgz.__version__,
                                **{f"vgz_{k}": v for k, v in vgz_commit(commit).items()})
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(device_name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=20).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    else:
        info.update(device_name=info["cpu"], gpu_memory_gib=None, capability=None, cudnn=None, driver=None)
    return info


# ---------------------------------------------------------------------------------------------- running parts

def budgets(args: argparse.Namespace, names: list[str]) -> dict[str, float]:
    """Each part's seconds: the table's (scaled down to fit ``--budget``), or ``--part-budget``'s."""
    if args.smoke:
        base = {name: SMOKE_BUDGET_S for name in names}
    else:
        base = {name: PARTS[name][1] if name != "official" or args.official else 0.0 for name in names}
        total = sum(base.values())
        if total > args.budget:
            base = {name: b * args.budget / total for name, b in base.items()}
    for item in args.part_budget:
        name, _, seconds = item.partition("=")
        base[name] = float(seconds)
    return base


def start_official_build(args: argparse.Namespace, workdir: Path) -> subprocess.Popen | None:
    """With ``--official`` on a GPU: build the official CUDA plugins in the background (CPU work) into
    the suite's ``TORCH_EXTENSIONS_DIR``, so that the ``official`` part does not spend its budget on nvcc."""
    if not args.official or args.device != "cuda" or "official" not in args.parts.split(","):
        return None
    log = open(workdir / "official-build.log", "w")
    # Niced and on 4 cores (ninja's MAX_JOBS), so that it takes little from the parts being timed.
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--build-official", args.official],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "MAX_JOBS": "4"}, preexec_fn=lambda: os.nice(19))


def finish_official_build(proc: subprocess.Popen | None, workdir: Path) -> dict[str, Any] | None:
    if proc is None:
        return None
    code = proc.poll()
    if code is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    tail = (workdir / "official-build.log").read_text(errors="replace").strip().splitlines()
    return dict(finished=code is not None, returncode=code, log_tail=tail[-10:])


def run_part(name: str, budget: float, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run one part in a fresh process (its own process group, killed at budget + grace)."""
    if name == "official" and not args.official:  # nothing to run: no process to start
        return dict(status="skipped", budget_s=round(budget, 1), wall_s=0.0, records=[dict(
            what="official", skipped="no --official PATH (a universome/stylegan-v checkout) given")])
    records, log = workdir / f"{name}.jsonl", workdir / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run-part", name, "--records", str(records),
           "--part-seconds", str(budget), "--device", args.device]
    if args.smoke:
        cmd.append("--smoke")
    if args.official:
        cmd += ["--official", str(Path(args.official).resolve())]
    if args.compile_backend:
        cmd += ["--compile-backend", args.compile_backend]
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            code: int | None = proc.wait(timeout=budget + min(GRACE_S, max(1.0, budget / 10)))
        except subprocess.TimeoutExpired:
            code = None
        finally:
            try:  # the part's own children too (compile workers, loader workers)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in records.read_text().splitlines() if line.strip()] if records.exists() else []
    if code is None:
        status = "timeout"
    elif code != 0:
        status = "failed"
    elif rows and all("skipped" in r for r in rows):
        status = "skipped"
    elif any(r.get("ok") is False for r in rows):
        status = "checks failed"
    else:
        status = "ok"
    tail = log.read_text(errors="replace").strip().splitlines()[-20:]
    result = dict(status=status, budget_s=round(budget, 1), wall_s=round(wall, 1), records=rows)
    if status in ("failed", "timeout"):
        result["log_tail"] = tail
    return result


def part_main(args: argparse.Namespace) -> None:
    """``--run-part NAME``: run one part in this process, appending records to ``--records``."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    from suite.part import Part

    module, _, func = PARTS[args.run_part][0].partition(":")
    part = Part(args.run_part, args.records, args.part_seconds, args.smoke, args.device,
                dict(official=args.official, compile_backend=args.compile_backend))
    try:
        getattr(importlib.import_module(module), func)(part)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- the table

def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, (int, float)) and value == 0:
        return "0"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 and value else f"{value:,.{digits if value < 10 else 1}f}"
    return str(value)


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def report(result: dict[str, Any]) -> str:
    """The results as Markdown (the form BENCHMARKS.md keeps them in)."""
    m = result["machine"]
    commit = m["vgz_commit"][:12] if len(m["vgz_commit"]) == 40 else m["vgz_commit"]
    out = [f"Machine: {m['device_name']} ({m['device']}{', ' + str(m['gpu_memory_gib']) + ' GiB' if m['gpu_memory_gib'] else ''}"
           f"{', driver ' + m['driver'] if m.get('driver') else ''}), torch {m['torch']}, CUDA {m['cuda']}, "
           f"vgz {m['vgz']} @ {commit}{' (with changes)' if m.get('vgz_dirty') else ''}; "
           f"{result['date']}, {result['wall_s']:.0f} s{' (smoke: tiny sizes)' if result['smoke'] else ''}.", ""]
    out += ["Parts: " + ", ".join(f"{name} {p['status']} ({p['wall_s']:.0f}/{p['budget_s']:.0f} s)"
                                  for name, p in result["parts"].items()), ""]
    recs = {name: p["records"] for name, p in result["parts"].items()}
    gen = [r for name in ("generate", "compile") for r in recs.get(name, []) if r.get("what") == "generate"]
    if gen:
        out += ["Generation (StyleGAN-V, pipeline call, frames in [0, 1]):", ""]
        out += _table(["variant", "frames x videos", "frames/s", "s/call", "first call s", "peak MiB", "max diff vs fp32"],
                      [[r["variant"] + (f" ({r['backend']})" if "backend" in r else ""), f"{r['frames']} x {r['batch']}",
                        r.get("frames_per_s", r.get("error")), r.get("s_per_call"), r.get("first_call_s"),
                        r.get("peak_mib"), r.get("max_diff_vs_fp32")] for r in gen]) + [""]
    off = [r for r in recs.get("official", []) if r.get("what") == "official" and "speedup" in r]
    if off:
        out += ["Official StyleGAN-V generator vs vgz (same weights, fp16 in the 4 highest resolutions on both):", ""]
        out += _table(["frames x videos", "official frames/s", "vgz frames/s", "official / vgz time", "peak MiB official",
                       "peak MiB vgz", "max diff", "official CUDA ops"],
                      [[f"{r['frames']} x {r['batch']}", r["official_frames_per_s"], r["vgz_frames_per_s"], r["speedup"],
                        r["official_peak_mib"], r["vgz_peak_mib"], r["max_diff"], r["custom_ops"]] for r in off]) + [""]
    train = [r for r in recs.get("train", []) if r.get("what") == "train" and "clips_per_s" in r]
    if train:
        out += ["Training step (StyleGAN-V recipe, the release's architecture and hyper-parameters):", ""]
        out += _table(["precision", "resolution", "batch", "steps (R1)", "s/step", "clips/s", "peak MiB", "MiB per clip",
                       "phase peaks MiB"],
                      [[r["precision"], r["resolution"], r["batch"], f"{r['steps']} ({r['r1_steps']})", r["s_per_step"],
                        r["clips_per_s"], r["peak_mib"], r["mib_per_clip"],
                        ", ".join(f"{k} {v:.0f}" for k, v in (r["phase_peak_mib"] or {}).items()) or None]
                       for r in train]) + [""]
    for r in recs.get("fp16", []):
        if r.get("what") == "fp16":
            out += [f"fp16 loss scaling ({r['loss_scaling']}, {r['resolution']}x{r['resolution']}, batch {r['batch']}): "
                    f"{r['steps']} steps, {r['s_per_step']} s/step; skipped optimizer steps G {r['skipped_G']}, "
                    f"D {r['skipped_D']} of {r['optimizer_steps']}; loss scale {r['scale_first']:g} -> {r['scale_final']:g} "
                    f"(min {r['scale_min']:g}, {r['scale_drops']} drops); non-finite loss steps {r['nonfinite_loss_steps']}; "
                    f"R1 through the trainer {r['r1']['r1_trainer']:.6g} vs plain autograd {r['r1']['r1_plain']:.6g} "
                    f"(relative {r['r1']['rel_diff']:.2g}, at scale {r['r1']['scale']:g}); checks "
                    + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items()), ""]
    det = [r for r in recs.get("detectors", []) if r.get("what") == "detector"]
    if det:
        out += ["Detectors (random weights, uint8 input resized inside):", ""]
        out += _table(["detector", "layout", "input", "per s", "peak MiB", "max diff vs contiguous"],
                      [[r["detector"], "channels-last" if r["channels_last"] else "contiguous", "x".join(map(str, r["input"])),
                        f"{r['per_s']} {r['unit']}", r["peak_mib"], r["max_diff_vs_contiguous"]] for r in det]) + [""]
    inv = [r for r in recs.get("inversion", []) if r.get("what") in ("encoder", "pipeline")]
    if inv:
        out += ["Inversion (pSp's released architecture, 256x256 images):", ""]
        out += _table(["what", "precision", "batch", "images/s", "peak MiB", "max diff vs fp32"],
                      [[f"encoder/{r['encoder']}" if r["what"] == "encoder" else f"psp pipeline {r['call']}",
                        r.get("precision", "default"), r["batch"], r["images_per_s"], r["peak_mib"],
                        r.get("max_diff_vs_fp32")] for r in inv]) + [""]
    sgen = [r for r in recs.get("styleinv", []) if r.get("what") == "styleinv-generate"]
    if sgen:
        out += ["StyleInV generation (ffs architecture: 256x256 StyleGAN2, IR-SE50 encoder; pipeline call):", ""]
        out += _table(["variant", "frames x videos", "frames/s", "s/call", "peak MiB", "max diff vs fp32"],
                      [[r["variant"], f"{r['frames']} x {r['batch']}", r["frames_per_s"], r["s_per_call"], r["peak_mib"],
                        r["max_diff_vs_fp32"]] for r in sgen]) + [""]
    strain = [r for r in recs.get("styleinv-train", []) if r.get("what") == "styleinv-train"]
    if strain:
        out += ["StyleInV training step (ffs preset: SI, D, R1 on 4-frame clips; the paper's Table 1: 2.85 GB per "
                "video):", ""]
        out += _table(["batch", "resolution", "s/step", "peak MiB", "MiB per video"],
                      [[r["batch"], r["resolution"], r["s_per_step"], r["peak_mib"], r["mib_per_video"]]
                       for r in strain]) + [""]
    vtrain = [r for r in recs.get("stylevideogan", []) if r.get("what") == "stylevideogan-train"]
    vsched = [r for r in recs.get("stylevideogan", []) if r.get("what") == "stylevideogan-schedule"]
    if vtrain:
        out += ["StyleVideoGAN training steps in W+ (paper sizes: 18 x 512, windows of 25; Gmain includes the "
                "gradient angle penalty):", ""]
        out += _table(["phase", "batch", "s/step", "peak MiB"],
                      [[r["phase"], r["batch"], r["s_per_call"], r["peak_mib"]] for r in vtrain]) + [""]
    for r in vsched:
        out += [f"StyleVideoGAN trainer step {r['s_per_trainer_step']} s ({r['sequences_per_s']} sequences/s); the "
                f"paper's schedule ({r['paper_steps']} steps) would take {r['paper_schedule_h']} h (paper: ~6 h on "
                "one Quadro RTX 8000)", ""]
    vgen = [r for r in recs.get("stylevideogan", []) if r.get("what") == "stylevideogan-generate"]
    if vgen:
        out += ["StyleVideoGAN generation (paper256: 256x256 StyleGAN2; pipeline call, rendering included):", ""]
        out += _table(["frames x videos", "frames/s", "W+ steps/s (motion alone)", "peak MiB"],
                      [[f"{r['frames']} x {r['batch']}", r["frames_per_s"], r["latent_steps_per_s"], r["peak_mib"]]
                       for r in vgen]) + [""]
    for name, p in result["parts"].items():
        for r in p["records"]:
            if "skipped" in r:
                out.append(f"- {name}: {r['what']} not measured: {r['skipped']}")
        if p.get("log_tail"):
            out += [f"- {name} {p['status']}; its last output:", *("    " + line for line in p["log_tail"][-8:])]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="where the JSON results go (required)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device, seconds (the test suite's run)")
    parser.add_argument("--official", help="a universome/stylegan-v checkout, for the official generator's speed")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated parts (default: {','.join(PARTS)})")
    parser.add_argument("--budget", type=float, default=530.0, help="seconds for all parts together (GPU run)")
    parser.add_argument("--part-budget", action="append", default=[], metavar="NAME=SECONDS",
                        help="one part's budget instead of its share (repeatable)")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is a GPU)")
    parser.add_argument("--jobs", type=int, default=1, help="with --smoke: parts run this many at a time (a GPU run "
                                                            "times one part at a time)")
    parser.add_argument("--commit", help="the vgz commit, where the tree has no .git")
    parser.add_argument("--compile-backend", help="torch.compile backend (default: inductor on GPU, eager on CPU)")
    parser.add_argument("--run-part", help=argparse.SUPPRESS)
    parser.add_argument("--records", help=argparse.SUPPRESS)
    parser.add_argument("--part-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--build-official", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_part:
        part_main(args)
        return
    if args.build_official:
        sys.path[:0] = [str(HERE), str(ROOT)]
        from suite.generate import build_official_ops

        print(json.dumps(build_official_ops(args.build_official)))
        return
    if not args.out:
        parser.error("--out PATH is required (where the JSON results go)")
    names = [n for n in args.parts.split(",") if n]
    unknown = [n for n in names if n not in PARTS] + [item.partition("=")[0] for item in args.part_budget
                                                      if item.partition("=")[0] not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    for item in args.part_budget:
        try:
            float(item.partition("=")[2])
        except ValueError:
            parser.error(f"--part-budget {item!r}: expected NAME=SECONDS")
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU here")
    if args.jobs < 1 or (args.jobs > 1 and not args.smoke):
        parser.error("--jobs N (N > 1) is for --smoke runs only: timed parts run one at a time")
    if args.device != "cuda" and not args.smoke:
        parser.error("the full sizes are for a GPU, and this machine has none: add --smoke for the quick CPU run")
    sys.path.insert(0, str(ROOT))
    from vgz.utils import atomic_write_text

    started = time.perf_counter()
    result: dict[str, Any] = dict(suite="vgz gpu_suite", format=FORMAT_VERSION, smoke=args.smoke,
                                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                  machine=machine(args.device, args.commit), parts={})
    plan = budgets(args, names)
    print(f"vgz GPU suite on {result['machine']['device_name']}: " +
          ", ".join(f"{n} {plan[n]:.0f} s" for n in names), flush=True)
    with tempfile.TemporaryDirectory(prefix="vgz-gpu-suite-") as tmp:
        # Every process of the run (the plugin build, the parts) shares one extensions folder.
        os.environ["TORCH_EXTENSIONS_DIR"] = os.path.join(tmp, "torch_extensions")
        build = start_official_build(args, Path(tmp))
        if args.jobs > 1:  # smoke parts side by side, one CPU thread each
            os.environ["OMP_NUM_THREADS"] = "1"
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.jobs) as pool:
            running = [(name, pool.submit(run_part, name, plan[name], args, Path(tmp))) for name in names]
            for name, future in running:  # reported in the table's order
                result["parts"][name] = part = future.result()
                result["wall_s"] = round(time.perf_counter() - started, 1)
                atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")  # after every part: partial results
                print(f"  {name}: {part['status']} in {part['wall_s']:.0f} s, {len(part['records'])} records",
                      flush=True)
        if build is not None:
            result["official_build"] = finish_official_build(build, Path(tmp))
            atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print()
    print(report(result))
    print(f"\nResults: {os.path.abspath(args.out)}")
    bad = [name for name, p in result["parts"].items() if p["status"] not in ("ok", "skipped")]
    if bad:
        print("Not clean: " + ", ".join(f"{n} {result['parts'][n]['status']}" for n in bad), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
