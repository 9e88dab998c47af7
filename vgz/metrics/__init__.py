"""Evaluation: FVD and FID with StyleGAN-V's and StyleVideoGAN's protocols.

* :mod:`vgz.metrics.evaluation`: :func:`evaluate` and :class:`EvalReport` (the JSON result).
* :mod:`vgz.metrics.protocol`: the registered metrics of StyleGAN-V's protocol (``fvd16``, ``fvd128``,
  ``fvd128_subsample8``, ``fid``) and how their real and generated samples are taken.
* :mod:`vgz.metrics.windows`: StyleVideoGAN's protocol (``fvd_short``, ``fvd_long``, ``fid_short``,
  ``fid_long``: window-long clips of short and long generated sets, random real windows and frames).
* :mod:`vgz.metrics.looping`: :func:`~vgz.metrics.looping.loop_score`, how much long latent
  trajectories repeat past the training window.
* :mod:`vgz.metrics.features`: the feature-detector contract (:class:`FeatureDetector`) and the
  checks that refuse degenerate detectors.
* :mod:`vgz.metrics.detectors`: :func:`load_detector` (TorchScript files, state dicts; local,
  folder or Hub).
* :mod:`vgz.metrics.i3d`, :mod:`vgz.metrics.inception`: vgz's I3D and FID Inception networks.
* :mod:`vgz.metrics.frechet`: float64 feature statistics and a stable Frechet distance.

Importing this package is cheap; the names below import torch on first use.
"""

from __future__ import annotations

from vgz._lazy import lazy_attributes

_LAZY = {
    "evaluate": "vgz.metrics.evaluation",
    "EvalReport": "vgz.metrics.evaluation",
    "EvaluationError": "vgz.metrics.evaluation",
    "default_cache_dir": "vgz.metrics.evaluation",
    "create_metric": "vgz.metrics.protocol",
    "Metric": "vgz.metrics.protocol",
    "FeatureDetector": "vgz.metrics.features",
    "TorchScriptDetector": "vgz.metrics.detectors",
    "DetectorError": "vgz.metrics.features",
    "load_detector": "vgz.metrics.detectors",
    "I3DDetector": "vgz.metrics.i3d",
    "InceptionDetector": "vgz.metrics.inception",
    "FeatureStats": "vgz.metrics.frechet",
    "frechet_distance": "vgz.metrics.frechet",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
