"""Feature statistics and the Frechet distance between two Gaussians.

The official StyleGAN-V code accumulates ``sum(x)`` and ``sum(x x^T)`` in float64 and takes the
matrix square root of ``sigma_1 sigma_2`` with ``scipy.linalg.sqrtm``, a non-symmetric Schur
method that can return complex values or lose digits when the covariances are rank-deficient
(400-d I3D features from fewer than 400 clips always are). vgz accumulates the same way and uses
the symmetric identity

    tr sqrt(S1 S2) = tr sqrt(sqrt(S1) S2 sqrt(S1)) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))

with two symmetric eigendecompositions (``numpy.linalg.eigh``), which is what StyleInV's
``trace_sqrt_product`` does too. Both agree with sqrtm on well-conditioned inputs; tests check it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["FeatureStats", "frechet_distance", "frechet_distance_from_stats", "MIN_RECOMMENDED_SAMPLES", "FewSamplesWarning"]

#: Fewer clips than feature dimensions (400 for I3D) make the covariance rank-deficient.
MIN_RECOMMENDED_SAMPLES = 400


class FewSamplesWarning(UserWarning):
    """A Frechet distance was computed from fewer samples than makes it comparable to published ones."""


class FeatureStats:
    """Running mean and covariance of feature vectors, accumulated in float64.

    ``append`` takes ``[N, D]`` features (anything numpy converts; torch tensors are moved to the
    CPU); features go through float32 first, as the official code does, so that the same features
    give the same statistics bit for bit.
    """

    def __init__(self, num_features: int | None = None, max_items: int | None = None):
        self.max_items = max_items
        self.num_items = 0
        self.num_features = num_features
        self._sum: np.ndarray | None = None
        self._sum_outer: np.ndarray | None = None
        if num_features is not None:
            self._allocate(num_features)

    def _allocate(self, num_features: int) -> None:
        self.num_features = num_features
        self._sum = np.zeros([num_features], dtype=np.float64)
        self._sum_outer = np.zeros([num_features, num_features], dtype=np.float64)

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, features) -> None:
        if hasattr(features, "detach"):
            features = features.detach().cpu().numpy()
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected features [N, D], found shape {x.shape}")
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if self._sum is None:
            self._allocate(x.shape[1])
        elif x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} features per item, found {x.shape[1]}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinite values (a broken detector or input)")
        x64 = x.astype(np.float64)
        self._sum += x64.sum(axis=0)
        self._sum_outer += x64.T @ x64
        self.num_items += x.shape[0]

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean [D], covariance [D, D])``, the covariance normalised by N as the official code does."""
        if self.num_items == 0 or self._sum is None:
            raise ValueError("no features were accumulated")
        mean = self._sum / self.num_items
        cov = self._sum_outer / self.num_items - np.outer(mean, mean)
        return mean, cov

    # ----------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> None:
        """Write ``.npz`` (plain arrays, no pickle) under a temporary name, then rename."""
        from vgz.utils import atomic_path

        if self._sum is None:
            raise ValueError("no features were accumulated")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, sum=self._sum, sum_outer=self._sum_outer, num_items=np.int64(self.num_items))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStats":
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                stats = cls(num_features=int(data["sum"].shape[0]))
                stats._sum = data["sum"].astype(np.float64)
                stats._sum_outer = data["sum_outer"].astype(np.float64)
                stats.num_items = int(data["num_items"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: expected feature statistics (.npz with sum, sum_outer, num_items): {exc}") from exc
        if stats._sum_outer.shape != (stats.num_features, stats.num_features):
            raise ValueError(f"{path}: sum_outer has shape {stats._sum_outer.shape}, expected "
                             f"{(stats.num_features, stats.num_features)}")
        return stats


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix; tiny negative eigenvalues
    (round-off) are clipped to 0."""
    eigvals, eigvecs = np.linalg.eigh(matrix)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))`` between two Gaussians, in float64.

    Args:
        mu1, mu2: means ``[D]``.
        sigma1, sigma2: covariances ``[D, D]`` (symmetric PSD; symmetrised here against round-off).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be equal [D] vectors, found {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be [{d}, {d}], found {sigma1.shape} and {sigma2.shape}")
    sigma1, sigma2 = (sigma1 + sigma1.T) / 2, (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigvals, 0, None)).sum()
    value = np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt
    return float(value)


def frechet_distance_from_stats(real: FeatureStats, fake: FeatureStats, *, name: str = "Frechet distance") -> float:
    """:func:`frechet_distance` of two accumulated :class:`FeatureStats`, with a
    :class:`FewSamplesWarning` when either side has fewer than :data:`MIN_RECOMMENDED_SAMPLES`."""
    fewest = min(real.num_items, fake.num_items)
    if fewest < MIN_RECOMMENDED_SAMPLES:
        warnings.warn(f"{name} from {real.num_items} real and {fake.num_items} generated samples: with fewer than "
                      f"{MIN_RECOMMENDED_SAMPLES} the covariance is rank-deficient and the value is not comparable "
                      "to published ones (they use 2048 clips for FVD, 50k images for FID)", FewSamplesWarning,
                      stacklevel=2)
    return frechet_distance(*real.mean_cov(), *fake.mean_cov())
