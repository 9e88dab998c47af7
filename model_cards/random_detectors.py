"""Write the random-weight detectors that the built-in models' evaluations use.

The real I3D and Inception weights cannot be downloaded on the machine that trains and evaluates the
built-in models, so their FVD and FID use detectors with random weights (He-normal, from
:func:`vgz.metrics.features.randomize_`). Their numbers rank models on the same data against the
same files; they are not comparable to any published FVD or FID. Run::

    python model_cards/random_detectors.py DETECTOR_DIR

which writes (with the same weights hash on every run, the hash the cards record; TorchScript file
bytes vary from process to process):

* ``i3d_random_seed0.pt``: ``I3DDetector()`` randomized with seed 0, exported as a TorchScript file
  called like StyleGAN-V's ``i3d_torchscript.pt``;
* ``inception_random_seed1.safetensors``: ``InceptionDetector()`` randomized with seed 1, as a
  pytorch-fid state dict.

and prints each file's SHA-256 and weights hash (:func:`vgz.metrics.features.weights_sha256`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def write(folder: Path) -> list[Path]:
    from safetensors.torch import save_file

    from vgz.metrics.detectors import load_detector
    from vgz.metrics.features import randomize_
    from vgz.metrics.i3d import I3DDetector, export_torchscript
    from vgz.metrics.inception import InceptionDetector
    from vgz.utils import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    i3d = export_torchscript(randomize_(I3DDetector(), seed=0), folder / "i3d_random_seed0.pt")
    inception = folder / "inception_random_seed1.safetensors"
    state = {k: v.contiguous() for k, v in randomize_(InceptionDetector(), seed=1).net.state_dict().items()}
    with atomic_path(inception) as tmp:
        save_file(state, str(tmp))
    for path in (i3d, inception):
        detector = load_detector(path)
        print(f"{path}  sha256 {detector.sha256}  weights {detector.weights_sha256}")
    return [i3d, inception]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the two detector files")
    write(parser.parse_args().folder)
