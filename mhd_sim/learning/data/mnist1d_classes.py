"""MNIST-1D with as many classes as asked: the package's ten digit templates, then more drawn
as smooth random 12-point curves, every class through the package's own transforms.

MNIST-1D (Greydanus 2020) makes each sample from a class template (a 12-point curve) by
padding, dilating, scaling, translating, adding correlated and iid noise and shearing
(``mnist1d.transform``). The ten originals look like digits; a new class is a random curve
smoothed over about three points and whitened as the package whitens its own, drawn from a
stream of its own (``template_seed``), so the classes are the same whatever the scenario's
seed. ``generate(10 classes)`` is exactly the package's ``make_dataset``.

>>> t = templates(12, template_seed=0)
>>> t["x"].shape, bool(np.allclose(t["x"][:, 0], 0))  # every curve starts at 0
((12, 12), True)
>>> bool(np.array_equal(templates(12, 0)["x"], t["x"]))  # seeded
True
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

# the package's ten digits (mnist1d.data.get_templates; a test checks they are the same)
DIGITS = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)
ARGS = {  # mnist1d.data.get_dataset_args(), the package's defaults
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "final_seq_length": 40,
}


def _whiten(x: np.ndarray) -> np.ndarray:
    """As the package whitens its templates: zero mean, unit deviation, starting at 0, / 6."""
    x = x - x.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def random_curves(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` smooth random 12-point curves [n, 12]: iid normal points smoothed by a 3-point
    kernel (as wide as a digit's strokes), ends pulled towards the baseline as the digits'."""
    raw = rng.standard_normal((n, 12 + 2))
    smooth = (raw[:, :-2] + 2 * raw[:, 1:-1] + raw[:, 2:]) / 4
    taper = np.minimum(1.0, np.minimum(np.arange(12), np.arange(12)[::-1]) / 2 + 0.25)
    return 5 + 1.5 * smooth * taper


def templates(classes: int, template_seed: int = 0) -> dict[str, np.ndarray]:
    """The class templates in the package's layout: ``x`` [classes, 12], ``t``, ``y``."""
    x = DIGITS[:classes]
    if classes > len(DIGITS):
        extra = random_curves(classes - len(DIGITS), np.random.default_rng(template_seed))
        x = np.concatenate([x, extra])
    return {"x": _whiten(x), "t": np.linspace(-5, 5, 12) / 6.0, "y": np.arange(classes)}


def generate(
    classes: int, samples: int, seed: int, template_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` signals [samples, 40] (float32, standardized) and labels, ``samples //
    classes`` per class, shuffled: ``mnist1d.data.make_dataset`` with these templates, its
    numpy global generator seeded with ``seed`` (and put back as it was)."""
    from mnist1d.transform import transform  # scipy; the package's data module needs more

    t = templates(classes, template_seed)
    args = SimpleNamespace(**ARGS)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        xs, ys = [], []
        for label in range(classes):
            for _ in range(samples // classes):
                x, _ = transform(t["x"][label], t["t"], args)
                xs.append(x)
                ys.append(t["y"][label])
        shuffle = np.random.permutation(len(ys))
    finally:
        np.random.set_state(state)
    x, y = np.stack(xs)[shuffle], np.stack(ys)[shuffle]
    x = (x - x.mean()) / x.std()
    return x.astype(np.float32), y.astype(np.int64)
