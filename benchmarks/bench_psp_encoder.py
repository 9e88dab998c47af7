"""Time the pSp encoders: vgz's ``encoder/psp`` and ``encoder/psp-w`` against eladrich/pixel2style2pixel.

The released pSp FFHQ encoder (IR-SE50, 18 W+ styles for a 1024x1024 generator) and the W encoder,
on 256x256 inputs. Both sides get the same seeded weights (``tests/fixtures/seeded_weights.py``:
pSp's parameter names are vgz's), the same images, eval mode; the script prints images/s of each,
the ratio (official / vgz time: > 1 means vgz is faster) and the largest difference of the codes.

    python benchmarks/bench_psp_encoder.py --psp /path/to/pixel2style2pixel   # their code imports its
                                                                              # CUDA ops: a shim stands in

Without ``--psp`` only vgz is timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe, peak_memory, time_fn  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES))
from seeded_weights import seeded_state  # noqa: E402

KINDS = {"psp": "GradualStyleEncoder", "psp-w": "BackboneEncoderUsingLastLayerIntoW"}


def official_encoders(root: Path):
    """pSp's ``psp_encoders`` module, imported as the parity fixture's script imports it (its CUDA ops
    replaced by the tests' pure-PyTorch shim)."""
    from make_psp_fixture import import_psp

    return import_psp(root)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--psp", type=Path, help="a checkout of eladrich/pixel2style2pixel (reference)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--output-size", type=int, default=1024, help="the generator's resolution (18 styles)")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import vgz

    official = official_encoders(args.psp) if args.psp else None
    print(describe(args.device))
    x = (torch.rand([args.batch, 3, 256, 256], generator=torch.Generator().manual_seed(0)) * 2 - 1).to(args.device)
    for kind, official_name in KINDS.items():
        fields = {"output_size": args.output_size} if kind == "psp" else {}
        ours = vgz.create("encoder", kind, **fields).eval()
        state = seeded_state({f"encoder.{k}": list(v.shape) for k, v in ours.state_dict().items()})
        state = {k[len("encoder."):]: v for k, v in state.items()}
        ours.load_weights(state, source="seeded")
        ours.to(args.device)
        runs = {"vgz": ours}
        if official is not None:
            opts = types.SimpleNamespace(input_nc=3, n_styles=int(torch.log2(torch.tensor(args.output_size))) * 2 - 2)
            theirs = getattr(official, official_name)(50, "ir_se", opts).eval()
            theirs.load_state_dict(state)
            runs["official"] = theirs.to(args.device)
        print(f"encoder/{kind} ({official_name}), {ours.num_parameters / 1e6:.1f} M parameters, batch {args.batch} "
              f"at 256x256:")
        times: dict[str, list[float]] = {name: [] for name in runs}
        with torch.no_grad():
            outputs = {name: net(x) for name, net in runs.items()}  # also the warm-up
            # Interleaved, one call of each in turn: load from other processes falls on both alike.
            for _ in range(args.iters):
                for name, net in runs.items():
                    times[name] += time_fn(lambda n=net: n(x), 1, 0, args.device)
            seconds = {name: statistics.median(t) for name, t in times.items()}
            for name, net in runs.items():
                mem = peak_memory(lambda n=net: n(x), args.device)
                print(f"  {name:9s} {seconds[name] * 1e3:8.1f} ms/batch  {args.batch / seconds[name]:6.2f} images/s "
                      f"(median of {args.iters})" + (f", peak {mem:.0f} MiB" if mem is not None else ""))
        if "official" in runs:
            diff = (outputs["vgz"] - outputs["official"]).abs().max().item()
            print(f"  official / vgz time: {seconds['official'] / seconds['vgz']:.2f}x   max |vgz - official|: {diff:.3g} "
                  f"(codes span +-{outputs['official'].abs().max().item():.3g})")


if __name__ == "__main__":
    main()
