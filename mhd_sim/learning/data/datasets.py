"""Datasets that work offline, each a registered function ``fn(rng, *, settings) -> Dataset``
drawing only from the generator it is given. A missing file is a clear error that says
what to download and where to put it."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pydantic

from ...registry import Registry
from ...untrusted import UserPath, load_arrays_pickle

DATASETS = Registry("dataset")


@dataclass(frozen=True)
class Dataset:
    """Arrays of one dataset: float32 inputs (samples first), int64 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def describe(spec: pydantic.BaseModel) -> tuple[int | None, tuple[int, ...] | None, int | None]:
    """What a dataset spec will hold, from its settings alone (no loading): its number of
    samples, the shape of one input and its classes; None where only loading tells."""
    kind = spec.kind
    if kind == "synthetic":
        return spec.train_size + spec.test_size, (spec.dim,), spec.classes
    if kind == "mnist1d":
        samples = spec.samples if spec.samples is not None else 1200 * spec.classes
        return samples, (40,), spec.classes
    if kind == "digits":
        return 1797, (1, 8, 8), 10
    if kind in ("cifar10", "cifar100"):
        train = spec.train_size if spec.train_size is not None else 50_000
        classes = 10 if kind == "cifar10" else (100 if spec.labels == "fine" else 20)
        return train + 10_000, (3, 32, 32), classes
    return _npz_shape(spec.path) if kind == "npz" else (None, None, None)


NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
MAX_LABEL_READ = 1 << 28  # labels read to count classes before the budget (8 bytes each)


def _npz_shape(path: Path) -> tuple[int | None, tuple[int, ...] | None, int | None]:
    """Samples, input shape and classes of an npz: shapes from the array headers, classes
    from the labels (read alone, never the inputs). A malformed file is a ValueError naming
    the file and the array; None where the file cannot be read at all (the loader says why).
    """
    try:
        stat = Path(path).stat()
    except OSError:
        return None, None, None
    return _npz_facts(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _npz_facts(path: str, mtime: int, size: int) -> tuple[int, tuple[int, ...], int | None]:
    import zipfile

    shapes, dtypes = {}, {}
    try:
        with zipfile.ZipFile(path) as z:
            members = set(z.namelist())
            missing = [k for k in NPZ_ARRAYS if f"{k}.npy" not in members]
            if missing:
                raise ValueError(
                    f"{path}: missing array(s) {', '.join(missing)}; expected "
                    f"{', '.join(NPZ_ARRAYS)}"
                )
            for name in NPZ_ARRAYS:
                with z.open(f"{name}.npy") as f:
                    major, _ = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if major == 1
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f)
                    shapes[name], dtypes[name] = shape, dtype
    except (OSError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if len(shapes[y]) != 1 or dtypes[y].kind not in "iu":
            raise ValueError(
                f"{path}: {y} has shape {shapes[y]} of {dtypes[y]}, expected one integer "
                "label per sample"
            )
        if len(shapes[x]) < 2 or dtypes[x].kind not in "iuf" or shapes[x][0] != shapes[y][0]:
            raise ValueError(
                f"{path}: {x} has shape {shapes[x]} of {dtypes[x]} for {shapes[y][0]:,} "
                f"labels, expected numbers [{shapes[y][0]:,}, features...]"
            )
    if shapes["x_train"][1:] != shapes["x_test"][1:]:
        raise ValueError(
            f"{path}: x_train's samples are {shapes['x_train'][1:]}, x_test's "
            f"{shapes['x_test'][1:]}: they must be alike"
        )
    samples = shapes["x_train"][0] + shapes["x_test"][0]
    classes = None
    if samples <= MAX_LABEL_READ:  # larger: the data alone is over any budget
        with np.load(path) as f:
            low = min(f["y_train"].min(initial=0), f["y_test"].min(initial=0))
            high = max(f["y_train"].max(initial=0), f["y_test"].max(initial=0))
        if low < 0:
            raise ValueError(f"{path}: labels go down to {low}, expected 0..C-1")
        classes = int(high) + 1
    return samples, tuple(shapes["x_train"][1:]), classes


def known_classes(spec: pydantic.BaseModel) -> int | None:
    """The number of classes a dataset spec will have, where its settings say it without
    loading the data (None: only loading tells, as for your own npz)."""
    return describe(spec)[2]


def _cache_dir() -> Path:
    return Path(os.environ.get("MHD_SIM_CACHE", Path.home() / ".cache" / "mhd-sim"))


def _existing_file(path: Path) -> Path:
    if not Path(path).is_file():
        raise ValueError(
            f"no file at '{path}': expected an .npz with arrays x_train, y_train, x_test, y_test"
        )
    return Path(path)


ExistingFile = Annotated[UserPath, pydantic.AfterValidator(_existing_file)]
Fraction = Annotated[float, pydantic.Field(gt=0, lt=1)]


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x_train.mean(), x_train.std() + 1e-8
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _split_train_test(x: np.ndarray, y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    order = rng.permutation(len(y))
    cut = int(round(len(y) * (1 - test_fraction)))
    tr, te = order[:cut], order[cut:]
    x_tr, x_te = _standardize(x[tr], x[te])
    return x_tr, y[tr].astype(np.int64), x_te, y[te].astype(np.int64)


@DATASETS.register("synthetic")
def synthetic(
    rng: np.random.Generator,
    *,
    classes: Annotated[int, pydantic.Field(ge=2)] = 10,
    dim: Annotated[int, pydantic.Field(ge=1)] = 32,
    train_size: Annotated[int, pydantic.Field(ge=10)] = 6000,
    test_size: Annotated[int, pydantic.Field(ge=10)] = 2000,
    clusters_per_class: Annotated[int, pydantic.Field(ge=1)] = 2,
    noise: Annotated[float, pydantic.Field(gt=0)] = 1.0,
) -> Dataset:
    """Gaussian clusters (a few per class) seen through a random tanh layer; seeded, instant."""
    centers = rng.normal(0, 2.0, size=(classes * clusters_per_class, dim))
    mixing = rng.normal(0, 1 / np.sqrt(dim), size=(dim, dim))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, len(centers), size=n)
        x = np.tanh((centers[cluster] + rng.normal(0, noise, size=(n, dim))) @ mixing)
        return x, (cluster % classes).astype(np.int64)

    (x_tr, y_tr), (x_te, y_te) = draw(train_size), draw(test_size)
    x_tr, x_te = _standardize(x_tr, x_te)
    return Dataset("synthetic", x_tr, y_tr, x_te, y_te, classes)


@DATASETS.register("digits")
def digits(rng: np.random.Generator, *, test_fraction: Fraction = 0.25) -> Dataset:
    """scikit-learn's 8×8 handwritten digits (1,797 images, shipped with the package)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_tr, y_tr, x_te, y_te = _split_train_test(bunch.data, bunch.target, test_fraction, rng)
    return Dataset("digits", x_tr.reshape(-1, 1, 8, 8), y_tr, x_te.reshape(-1, 1, 8, 8), y_te, 10)


@DATASETS.register("mnist1d")
def mnist1d(
    rng: np.random.Generator,
    *,
    classes: Annotated[int, pydantic.Field(ge=2, le=1000)] = 10,
    samples: Annotated[int, pydantic.Field(ge=100)] | None = None,
    template_seed: Annotated[int, pydantic.Field(ge=0)] = 0,
    test_fraction: Fraction = 0.2,
) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated locally with the mnist1d package's transforms and
    cached; ``classes`` beyond the ten digits come from smooth random templates drawn from
    ``template_seed`` (``mnist1d_classes.py``). ``samples``: in all (null: 1,200 per class).

    The generator's own seed is drawn from the scenario seed; the arrays are cached under
    ``$MHD_SIM_CACHE`` (default ``~/.cache/mhd-sim``) because generation loops in Python
    (about 0.2–0.4 ms a sample).
    """
    from .mnist1d_classes import generate

    samples = 1200 * classes if samples is None else samples
    if samples < classes:
        raise ValueError(f"mnist1d: {samples} samples cannot cover {classes} classes")
    seed = int(rng.integers(2**31 - 1))
    kind = "" if classes == 10 else f"{classes}c-t{template_seed}-"  # ten: the digits alone
    path = _cache_dir() / f"mnist1d-{kind}{samples}-{seed}.npz"
    if path.is_file():
        with np.load(path) as f:
            x, y = f["x"], f["y"]
    else:
        x, y = generate(classes, samples, seed, template_seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(path)
    x_tr, y_tr, x_te, y_te = _split_train_test(x, y, test_fraction, rng)
    return Dataset("mnist1d", x_tr, y_tr, x_te, y_te, classes)


@DATASETS.register("npz")
def npz(rng: np.random.Generator, *, path: ExistingFile) -> Dataset:
    """Your own arrays: an .npz holding x_train, y_train, x_test, y_test (labels 0..C-1).
    Its shapes, label types and label range are checked from the file before it is loaded,
    and the budget counts its samples, features and classes (``scenario/budget.py``)."""
    _, _, classes = _npz_shape(path)
    try:
        with np.load(path) as f:  # object arrays refused: allow_pickle stays False
            arrays = {k: f[k] for k in NPZ_ARRAYS}
    except Exception as e:  # a corrupt member
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    y_tr, y_te = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    x_tr = arrays["x_train"].astype(np.float32)
    x_te = arrays["x_test"].astype(np.float32)
    return Dataset(Path(path).stem, x_tr, y_tr, x_te, y_te, classes)


def _unpickle(path: Path, what: str, keys: tuple[bytes, ...]) -> dict:
    """One batch of the official python format: a dict whose ``data`` is [N, 3072] uint8 and
    whose label list has N integers in [0, 256). Read with a pickle reader that builds only
    containers and arrays (``untrusted.py``): a crafted batch cannot run code."""
    if not path.is_file():
        raise ValueError(f"{what}: no file '{path}'")
    batch = load_arrays_pickle(path, what)
    if not isinstance(batch, dict) or any(k not in batch for k in keys):
        raise ValueError(
            f"{what}: '{path}' is not in the official python format "
            f"(a dict with keys {', '.join(k.decode() for k in keys)})"
        )
    data, labels = batch[keys[0]], batch[keys[1]]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(
            f"{what}: '{path}' field data has shape {shape}, expected an array [N, 3072] of uint8"
        )
    field = keys[1].decode()
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise ValueError(
            f"{what}: '{path}' field {field} is {type(labels).__name__}, expected a list of "
            f"{len(data):,} integer labels"
        )
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError, RecursionError):
        y = np.asarray([None])
    if y.shape != (len(data),) or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise ValueError(
            f"{what}: '{path}' field {field} holds {y.shape[0] if y.ndim else 0:,} values of "
            f"type {y.dtype}, expected {len(data):,} integer labels >= 0 (one per row of data)"
        )
    batch[keys[1]] = y
    return batch


def _cifar(
    name: str,
    path: Path,
    train_files: list[str],
    test_file: str,
    label_key: bytes,
    classes: int,
    url: str,
    train_size: int | None,
    rng: np.random.Generator,
) -> Dataset:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"{name}: no directory '{path}'; download {url} and extract it there "
            f"(it holds {', '.join(train_files[:2])}{', …' if len(train_files) > 2 else ''} "
            f"and {test_file}), or set data.dataset.path"
        )
    keys = (b"data", label_key)
    train = [_unpickle(path / f, name, keys) for f in train_files]
    test = _unpickle(path / test_file, name, keys)
    x_tr = np.concatenate([np.asarray(b[b"data"]) for b in train])
    y_tr = np.concatenate([np.asarray(b[label_key]) for b in train]).astype(np.int64)
    x_te, y_te = np.asarray(test[b"data"]), np.asarray(test[label_key], dtype=np.int64)
    top = max(y_tr.max(initial=0), y_te.max(initial=0))
    if top >= classes:
        raise ValueError(f"{name}: '{path}' has label {top}; {name} has {classes} classes")
    if train_size is not None and train_size < len(y_tr):
        keep = np.sort(rng.choice(len(y_tr), train_size, replace=False))
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    x_tr = x_tr.reshape(-1, 3, 32, 32).astype(np.float32) / 255
    x_te = x_te.reshape(-1, 3, 32, 32).astype(np.float32) / 255
    mean, std = x_tr.mean((0, 2, 3), keepdims=True), x_tr.std((0, 2, 3), keepdims=True) + 1e-8
    return Dataset(name, (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te, classes)


@DATASETS.register("cifar10")
def cifar10(
    rng: np.random.Generator,
    *,
    path: UserPath = Path("~/.cache/mhd-sim/cifar-10-batches-py"),
    train_size: Annotated[int, pydantic.Field(ge=10)] | None = None,
) -> Dataset:
    """CIFAR-10 from the official python pickles in ``path`` (data_batch_1..5, test_batch);
    ``train_size`` keeps a seeded random subset of the 50,000 training images."""
    return _cifar(
        "cifar10",
        path,
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        b"labels",
        10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        train_size,
        rng,
    )


@DATASETS.register("cifar100")
def cifar100(
    rng: np.random.Generator,
    *,
    path: UserPath = Path("~/.cache/mhd-sim/cifar-100-python"),
    labels: Literal["fine", "coarse"] = "fine",
    train_size: Annotated[int, pydantic.Field(ge=10)] | None = None,
) -> Dataset:
    """CIFAR-100 from the official python pickles in ``path`` (train, test); ``labels`` picks
    the 100 fine classes or the 20 coarse superclasses."""
    key, classes = (b"fine_labels", 100) if labels == "fine" else (b"coarse_labels", 20)
    return _cifar(
        "cifar100",
        path,
        ["train"],
        "test",
        key,
        classes,
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        train_size,
        rng,
    )
