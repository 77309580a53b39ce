"""The image-graphics paper's hand-crafted baseline: dense SIFT, spatial pyramid, histogram-intersection NN.

As the paper describes it (after Lazebnik et al.): SIFT descriptors on a dense grid
(every 8 pixels), vector-quantised to 100 visual words learnt by k-means, counted in
the cells of a spatial pyramid (1×1, 2×2, 4×4, weighted per Lazebnik), normalised,
and the most similar reference view found by histogram intersection. OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np


class DenseSiftPyramid:
    """Bag of dense-SIFT words in a spatial pyramid; `fit` learns the words, `histograms` encodes crops."""

    def __init__(self, words: int = 100, step: int = 8, patch: int = 16, levels: int = 3, seed: int = 0) -> None:
        self.words, self.step, self.patch, self.levels, self.seed = words, step, patch, levels, seed
        self.sift = cv2.SIFT_create()
        self.vocabulary: np.ndarray | None = None

    def _grid(self, size: int) -> tuple[list[cv2.KeyPoint], np.ndarray]:
        half = self.patch / 2.0
        centres = np.arange(half, size - half + 1e-9, self.step)
        points = [(float(x), float(y)) for y in centres for x in centres]
        return [cv2.KeyPoint(x, y, float(self.patch)) for x, y in points], np.asarray(points) / size

    def descriptors(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dense SIFT of one square RGB or grey crop: (descriptors (P, 128), positions in [0, 1)²)."""
        grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        keypoints, positions = self._grid(grey.shape[0])
        _, desc = self.sift.compute(grey, keypoints)
        return desc.astype(np.float32), positions

    def fit(self, crops: np.ndarray, sample: int = 60_000) -> "DenseSiftPyramid":
        """Learn the visual words by k-means on descriptors sampled from `crops`."""
        rng = np.random.default_rng(self.seed)
        desc = np.concatenate([self.descriptors(c)[0] for c in crops])
        desc = desc[rng.permutation(len(desc))[:sample]]
        cv2.setRNGSeed(self.seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
        _, _, centres = cv2.kmeans(desc, self.words, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
        self.vocabulary = centres
        return self

    def histograms(self, crops: np.ndarray) -> np.ndarray:
        """Spatial-pyramid histograms (N, words·Σ4^l), each summing to 1."""
        if self.vocabulary is None:
            raise RuntimeError("fit the vocabulary first")
        matcher = cv2.BFMatcher(cv2.NORM_L2)
        out = []
        for crop in crops:
            desc, pos = self.descriptors(crop)
            words = np.array([m.trainIdx for m in matcher.match(desc, self.vocabulary)])
            parts = []
            for level in range(self.levels):
                cells = 2**level
                cell = (np.minimum((pos * cells).astype(int), cells - 1) * [1, cells]).sum(1)
                hist = np.bincount(cell * self.words + words, minlength=cells * cells * self.words)
                # Lazebnik et al.: level 0 weighs 1/2^(L-1), level l ≥ 1 weighs 1/2^(L-l)
                parts.append(hist / 2.0 ** (self.levels - max(level, 1)))
            h = np.concatenate(parts).astype(np.float32)
            out.append(h / max(h.sum(), 1e-12))
        return np.stack(out)


def intersection_nearest(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Index of the reference histogram with the largest intersection Σ min(q, r), per query
    (only the query's non-empty bins can contribute, so only those are compared)."""
    best = np.empty(len(queries), np.int64)
    for i, q in enumerate(queries):
        nz = np.flatnonzero(q)
        best[i] = int(np.minimum(references[:, nz], q[nz]).sum(1).argmax())
    return best
