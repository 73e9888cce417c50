"""The datasets: each loader finds its files, checks them, and returns float32 NCHW in [0, 1].

``load_dataset(name, data_dir=None, **options)`` returns ``((x_train, y_train), (x_test,
y_test))``: x float32 (N, C, H, W) scaled to [0, 1], y int64 (N,) classes in [0, num_classes).
Nothing is ever downloaded; a missing directory or file raises FileNotFoundError saying how to
get the data, a file that is not what it should be raises ValueError naming the file, what it
held and what was expected.

Options every dataset takes: ``n_train`` / ``n_test`` (None: all) keep the first n samples of
each split (synthetic: generate that many). Dataset-specific options are listed in the
docstring of each ``_load_<name>``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _validate as v
from .formats import IDX_IMAGES, IDX_LABELS, MAX_DEFLATE_RATIO, load_pickle, read_idx

Split = tuple[np.ndarray, np.ndarray]  # (x (N, C, H, W) float32, y (N,) int64)


class DatasetInfo(NamedTuple):
    """What a model needs to know about a dataset before seeing it."""

    input_shape: tuple[int, int, int]  # (C, H, W) of one sample
    num_classes: int


@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo | None  # None: depends on the options (synthetic)
    load: Callable[..., tuple[Split, Split]]
    options: dict[str, object] = field(default_factory=dict)  # dataset-specific, with defaults
    default_dir: str | None = None
    how_to_get: str = ""  # appended to every missing-file error
    class_names: tuple[str, ...] | None = None


_DIGIT_NAMES = tuple(str(d) for d in range(10))
_SPLIT_OPTIONS = {"n_train": None, "n_test": None}  # every dataset's options, None: all


# ---------------------------------------------------------------------------------------------
# shared helpers


def _import(module: str, dataset: str, package: str) -> object:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"dataset {dataset!r} needs {package}, which is not installed; "
                          f"install it with: pip install 'cnn-rosetta[report]' (or pip install "
                          f"{package})") from exc


def _no_data_dir(name: str, data_dir: Path | None) -> None:
    if data_dir is not None:
        raise ValueError(f"data_dir: got {str(data_dir)!r}, expected None ({name!r} reads no "
                         "files)")


def _resolve_dir(name: str, data_dir: Path | None) -> Path:
    """data_dir, or the dataset's default directory; it must exist."""
    spec = _SPECS[name]
    if data_dir is None:
        if spec.default_dir is None:
            raise ValueError(f"data_dir: got None, expected the directory holding the "
                             f"{name!r} files ({name!r} has no default directory). "
                             f"{spec.how_to_get}")
        data_dir = Path(spec.default_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{name}: data directory {str(data_dir)!r} does not exist or "
                                f"is not a directory. {spec.how_to_get}")
    return data_dir


def _find(name: str, directory: Path, candidates: tuple[str, ...]) -> Path:
    """The first of ``candidates`` present in ``directory``."""
    for candidate in candidates:
        path = directory / candidate
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name}: got no {' or '.join(candidates)} in {str(directory)!r}, "
                            f"expected one of them. {_SPECS[name].how_to_get}")


def _to_unit(images: np.ndarray, scale: float) -> np.ndarray:
    """Integers in [0, scale] -> float32 in [0, 1], divided in float32 (exact at 0 and scale)."""
    return np.divide(images, np.float32(scale), dtype=np.float32)


def _checked_labels(path: Path, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Labels as int64 (N,), after checking their shape, dtype and range."""
    if labels.ndim != 1:
        raise ValueError(f"{path}: got labels of shape {labels.shape}, expected (N,)")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: got labels of dtype {labels.dtype}, expected integers")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: got labels in [{labels.min()}, {labels.max()}], expected "
                         f"classes in [0, {num_classes - 1}]")
    return labels


def _check_count(x_path: Path, n_images: int, y_path: Path, n_labels: int) -> None:
    if n_images == 0:  # an empty split would train and evaluate to NaN metrics
        raise ValueError(f"{x_path}: got 0 images, expected at least 1")
    if n_images != n_labels:
        where = f"{x_path}" if x_path == y_path else f"{x_path} and {y_path}"
        raise ValueError(f"{where}: got {n_images} images and {n_labels} labels, expected as "
                         "many labels as images")


def _check_image_shape(path: Path, got: tuple[int, ...], expected: tuple[int, ...],
                       layout: str) -> None:
    if tuple(got) != tuple(expected):
        raise ValueError(f"{path}: got images of shape {tuple(got)}, expected {tuple(expected)} "
                         f"per sample ({layout})")


def _first(split: Split, n: int | None, argument: str, source: str) -> Split:
    """The first n samples of a split (all for None); asking for more than there are fails."""
    x, y = split
    if n is None:
        return x, y
    if n > len(x):
        raise ValueError(f"{argument}: got {n}, expected at most {len(x)} (the samples in "
                         f"{source})")
    return x[:n], y[:n]


# ---------------------------------------------------------------------------------------------
# digits (scikit-learn)


def _load_digits(data_dir: Path | None, n_train: int | None, n_test: int | None,
                 test_size: float, seed: int) -> tuple[Split, Split]:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16), split in a fixed way.

    The split is ``train_test_split(test_size=0.25, stratify=y, random_state=0)``: 1347
    training and 450 test images, every class in the same proportion in both (``test_size``
    and ``seed`` change it). Needs scikit-learn and nothing else.
    """
    _no_data_dir("digits", data_dir)
    datasets = _import("sklearn.datasets", "digits", "scikit-learn")
    selection = _import("sklearn.model_selection", "digits", "scikit-learn")
    bunch = datasets.load_digits()
    x = _to_unit(bunch.images, 16.0)[:, None]  # (1797, 1, 8, 8)
    y = bunch.target.astype(np.int64)  # (1797,)
    x_tr, x_te, y_tr, y_te = selection.train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed)
    source = f"the digits split with test_size={test_size}"
    return (_first((x_tr, y_tr), n_train, "n_train", source),
            _first((x_te, y_te), n_test, "n_test", source))


# ---------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX files)

_IDX_FILES = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}


def _idx_candidates(stem: str, ndim: int) -> tuple[str, ...]:
    # The original site and Zalando name files "train-images-idx3-ubyte"; Kaggle's copies say
    # "train-images.idx3-ubyte". Uncompressed first: it is faster to read.
    names = (f"{stem}-idx{ndim}-ubyte", f"{stem}.idx{ndim}-ubyte")
    return names + tuple(n + ".gz" for n in names)


def _load_idx_split(name: str, directory: Path, split: str) -> Split:
    info = _SPECS[name].info
    x_path = _find(name, directory, _idx_candidates(_IDX_FILES[split][0], 3))
    y_path = _find(name, directory, _idx_candidates(_IDX_FILES[split][1], 1))
    images = read_idx(x_path, IDX_IMAGES)  # (N, H, W) uint8
    _check_image_shape(x_path, images.shape[1:], info.input_shape[1:], "H, W")
    labels = _checked_labels(y_path, read_idx(y_path, IDX_LABELS), info.num_classes)
    _check_count(x_path, len(images), y_path, len(labels))
    return _to_unit(images, 255.0)[:, None], labels  # (N, 1, H, W), (N,)


def _idx_loader(name: str) -> Callable[..., tuple[Split, Split]]:
    def load(data_dir: Path | None, n_train: int | None,
             n_test: int | None) -> tuple[Split, Split]:
        directory = _resolve_dir(name, data_dir)
        return (_first(_load_idx_split(name, directory, "train"), n_train, "n_train",
                       f"{name}'s training files in {directory}"),
                _first(_load_idx_split(name, directory, "test"), n_test, "n_test",
                       f"{name}'s test files in {directory}"))

    load.__doc__ = (f"{name}: the four IDX files (train-images-idx3-ubyte, train-labels-idx1-"
                    "ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), each gzipped (.gz) "
                    "or not, in one directory; 28x28 grey images, 10 classes.")
    return load


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (python pickles)

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


def _cifar_entry(path: Path, batch: dict, key: str) -> object:
    # Python 2 wrote the keys as str, which encoding="bytes" reads back as bytes; a batch
    # re-saved by Python 3 has str keys.
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(f"{path}: got keys {sorted(map(str, batch))}, expected {key.encode()!r}")


def _read_cifar_batch(path: Path) -> Split:
    info = _SPECS["cifar10"].info
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: got a pickled {type(batch).__name__}, expected a dict with "
                         "b'data' and b'labels'")
    data = _cifar_entry(path, batch, "data")
    row = int(np.prod(info.input_shape))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != row:
        got = v.describe(data)
        raise ValueError(f"{path}: got b'data' {got}, expected a uint8 array of shape "
                         f"(N, {row})")
    raw = _cifar_entry(path, batch, "labels")
    try:
        labels = np.asarray(raw)
    except (ValueError, TypeError) as exc:  # a ragged list: "inhomogeneous shape"
        raise ValueError(f"{path}: got b'labels' that are not a flat list of integers "
                         f"({str(exc).split('.')[0]}), expected N integers") from None
    labels = _checked_labels(path, labels, info.num_classes)
    _check_count(path, len(data), path, len(labels))
    # each row holds the red plane, then green, then blue, each 32x32 row-major: NCHW already
    return _to_unit(data, 255.0).reshape((-1, *info.input_shape)), labels  # (N, 3, 32, 32)


def _concatenate(splits: list[Split]) -> Split:
    return np.concatenate([x for x, _ in splits]), np.concatenate([y for _, y in splits])


def _load_cifar10(data_dir: Path | None, n_train: int | None,
                  n_test: int | None) -> tuple[Split, Split]:
    """CIFAR-10's python version: data_batch_1..5 and test_batch, in cifar-10-batches-py.

    ``data_dir`` is that directory or its parent. The batches are read in order and only as
    many as ``n_train`` needs (n_train=10000 reads data_batch_1 alone). Pickles are loaded
    with an unpickler that refuses every global but NumPy's array rebuilders.
    """
    directory = _resolve_dir("cifar10", data_dir)
    if not (directory / _CIFAR_TRAIN[0]).exists() and (directory / _CIFAR_DIR).is_dir():
        directory = directory / _CIFAR_DIR
    train: list[Split] = []
    for batch in _CIFAR_TRAIN:
        if n_train is not None and sum(len(y) for _, y in train) >= n_train:
            break
        train.append(_read_cifar_batch(_find("cifar10", directory, (batch,))))
    test = _read_cifar_batch(_find("cifar10", directory, (_CIFAR_TEST,)))
    return (_first(_concatenate(train), n_train, "n_train",
                   f"the {len(train)} training batches in {directory}"),
            _first(test, n_test, "n_test", f"{directory / _CIFAR_TEST}"))


# ---------------------------------------------------------------------------------------------
# SIGNS (deeplearning.ai, HDF5)


def _read_signs_split(directory: Path, split: str) -> Split:
    h5py = _import("h5py", "signs", "h5py")
    info = _SPECS["signs"].info
    path = _find("signs", directory, (f"{split}_signs.h5",))
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: got a file h5py cannot open ({exc}), expected an HDF5 "
                         "file") from exc
    c, h, w = info.input_shape
    size = path.stat().st_size
    with f:
        arrays = {}
        for key, shape in ((f"{split}_set_x", (h, w, c)), (f"{split}_set_y", ())):
            arrays[key] = _h5_array(h5py, f, path, key, shape, size)
        if "list_classes" in f:
            classes = _h5_dataset(h5py, f, path, "list_classes")
            if classes.ndim != 1 or len(classes) != info.num_classes:
                got = ("a scalar" if classes.ndim == 0 else f"shape {classes.shape}"
                       if classes.ndim != 1 else f"{len(classes)} entries")
                raise ValueError(f"{path}: got {got} in 'list_classes', expected "
                                 f"{info.num_classes} entries")
    images, labels = arrays[f"{split}_set_x"], arrays[f"{split}_set_y"]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{path}: got {split}_set_x {v.describe(images)}, expected a uint8 "
                         f"array (N, {h}, {w}, {c})")
    _check_image_shape(path, images.shape[1:], (h, w, c), "H, W, C")
    labels = _checked_labels(path, labels, info.num_classes)
    _check_count(path, len(images), path, len(labels))
    # stored NHWC (as the course's Keras code wants it); the project is NCHW
    x = np.ascontiguousarray(_to_unit(images, 255.0).transpose(0, 3, 1, 2))  # (N, 3, 64, 64)
    return x, labels


def _h5_dataset(h5py: object, f: object, path: Path, key: str) -> object:
    """``f[key]``, which must be a dataset stored in the file itself (hard link)."""
    link = f.get(key, getlink=True)
    if link is None:
        raise ValueError(f"{path}: got datasets {sorted(f.keys())}, expected {key!r}")
    if not isinstance(link, h5py.HardLink):
        # an external link opens another file (maybe absent, maybe anywhere); a soft link
        # points elsewhere in this one: a dataset file needs neither
        raise ValueError(f"{path}: got {key!r} as a {type(link).__name__}, expected a "
                         "dataset stored in the file")
    try:
        node = f[key]
    except (KeyError, OSError) as exc:
        raise ValueError(f"{path}: got {key!r} that cannot be read ({exc})") from None
    if not isinstance(node, h5py.Dataset):
        raise ValueError(f"{path}: got {key!r} as a {type(node).__name__}, expected a "
                         "dataset")
    return node


def _h5_array(h5py: object, f: object, path: Path, key: str, sample: tuple[int, ...],
              size: int) -> np.ndarray:
    """Read dataset ``key`` after checking its rank against ``sample`` (the shape of one
    sample) and its size against what the file can hold (compressed chunks inflate at most
    formats.MAX_DEFLATE_RATIO times)."""
    node = _h5_dataset(h5py, f, path, key)
    if node.ndim != 1 + len(sample):
        raise ValueError(f"{path}: got {key} of shape {node.shape}, expected (N"
                         f"{''.join(f', {d}' for d in sample)})")
    nbytes = math.prod(node.shape) * node.dtype.itemsize
    if nbytes > max(size, 1) * MAX_DEFLATE_RATIO:
        raise ValueError(f"{path}: got {key} of shape {node.shape} ({nbytes} bytes), expected "
                         f"at most {size * MAX_DEFLATE_RATIO} bytes in a file of {size}")
    try:
        return np.asarray(node[()])
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: got {key} that cannot be read ({exc})") from None


def _load_signs(data_dir: Path | None, n_train: int | None,
                n_test: int | None) -> tuple[Split, Split]:
    """deeplearning.ai's SIGNS: train_signs.h5 (1080 images) and test_signs.h5 (120).

    Each holds "<split>_set_x" (N, 64, 64, 3) uint8, "<split>_set_y" (N,) and "list_classes";
    hands showing 0 to 5 fingers. Needs h5py.
    """
    directory = _resolve_dir("signs", data_dir)
    return (_first(_read_signs_split(directory, "train"), n_train, "n_train",
                   f"{directory / 'train_signs.h5'}"),
            _first(_read_signs_split(directory, "test"), n_test, "n_test",
                   f"{directory / 'test_signs.h5'}"))


# ---------------------------------------------------------------------------------------------
# synthetic


def _load_synthetic(data_dir: Path | None, n_train: int | None, n_test: int | None,
                    input_shape: tuple[int, int, int], num_classes: int, noise: float,
                    seed: int) -> tuple[Split, Split]:
    """Generated images of any shape, for benchmarks: learnable, deterministic, no files.

    Each class has a mean image drawn uniformly from [0, 1]; a sample is its class mean plus
    Gaussian noise of standard deviation ``noise``, clipped to [0, 1]. Labels are balanced
    (each class within one sample of n / num_classes) and shuffled. The means, the training
    set and the test set come from three independent streams of ``seed``, so changing n_train
    never changes the test set. Defaults: 1024 training and 256 test samples of (1, 28, 28),
    10 classes, noise 0.5 (a nearest-mean classifier already scores far above chance).
    """
    _no_data_dir("synthetic", data_dir)
    means_seed, train_seed, test_seed = np.random.SeedSequence(seed).spawn(3)
    means = np.random.default_rng(means_seed).random((num_classes, *input_shape),
                                                     dtype=np.float32)  # (K, C, H, W)

    def sample(seed_seq: np.random.SeedSequence, n: int) -> Split:
        rng = np.random.default_rng(seed_seq)
        y = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)  # (n,)
        x = rng.standard_normal((n, *input_shape), dtype=np.float32)  # (n, C, H, W)
        x *= np.float32(noise)
        x += means[y]
        return np.clip(x, 0.0, 1.0, out=x), y

    return (sample(train_seed, 1024 if n_train is None else n_train),
            sample(test_seed, 256 if n_test is None else n_test))


# ---------------------------------------------------------------------------------------------
# the registry

_MNIST_HOW = ("Get the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
              "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (gzipped or not) from an MNIST "
              "mirror and pass their directory as data_dir; nothing is downloaded at run time.")
_FASHION_HOW = ("Install Debian's package: apt-get install dataset-fashion-mnist (it puts the "
                "four *-ubyte.gz files in /usr/share/datasets/fashion-mnist), or put the files "
                "from https://github.com/zalandoresearch/fashion-mnist in a directory and pass "
                "it as data_dir; nothing is downloaded at run time.")
_CIFAR_HOW = ("Download and unpack 'CIFAR-10 python version' (cifar-10-python.tar.gz) from "
              "https://www.cs.toronto.edu/~kriz/cifar.html and pass the cifar-10-batches-py "
              "directory (or its parent) as data_dir; nothing is downloaded at run time.")
_SIGNS_HOW = ("Put train_signs.h5 and test_signs.h5 (deeplearning.ai's SIGNS dataset, from the "
              "course's 'Convolutional Neural Networks' assignments) in a directory and pass it "
              "as data_dir; nothing is downloaded at run time.")

_SPECS: dict[str, _Spec] = {
    "digits": _Spec(DatasetInfo((1, 8, 8), 10), _load_digits,
                    options={"test_size": 0.25, "seed": 0}, class_names=_DIGIT_NAMES),
    "mnist": _Spec(DatasetInfo((1, 28, 28), 10), _idx_loader("mnist"), how_to_get=_MNIST_HOW,
                   class_names=_DIGIT_NAMES),
    "fashion-mnist": _Spec(
        DatasetInfo((1, 28, 28), 10), _idx_loader("fashion-mnist"),
        default_dir="/usr/share/datasets/fashion-mnist", how_to_get=_FASHION_HOW,
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot")),
    "cifar10": _Spec(
        DatasetInfo((3, 32, 32), 10), _load_cifar10, how_to_get=_CIFAR_HOW,
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                     "ship", "truck")),
    "signs": _Spec(DatasetInfo((3, 64, 64), 6), _load_signs, how_to_get=_SIGNS_HOW,
                   class_names=tuple(str(d) for d in range(6))),
    "synthetic": _Spec(None, _load_synthetic,
                       options={"input_shape": (1, 28, 28), "num_classes": 10, "noise": 0.5,
                                "seed": 0}),
}

DATASETS = tuple(_SPECS)


# ---------------------------------------------------------------------------------------------
# public functions


def _spec(name: object) -> _Spec:
    if not isinstance(name, str):
        raise TypeError(f"name: got {v.describe(name)}, expected one of {', '.join(DATASETS)}")
    if name not in _SPECS:
        raise ValueError(f"name: got {name!r}, expected one of {', '.join(DATASETS)}")
    return _SPECS[name]


# how each option is checked (the message names the option)
_OPTION_CHECKS: dict[str, Callable[[str, object], object]] = {
    # >= 1: an empty split trains and evaluates to NaN metrics
    "n_train": lambda k, x: v.optional_integer(k, x, 1),
    "n_test": lambda k, x: v.optional_integer(k, x, 1),
    "test_size": lambda k, x: v.real(k, x, 0.0, 1.0, low_open=True, high_open=True),
    "seed": lambda k, x: v.integer(k, x, 0),
    "input_shape": lambda k, x: v.shape(k, x, 3),
    "num_classes": lambda k, x: v.integer(k, x, 1),
    "noise": lambda k, x: v.real(k, x, 0.0),
}


def _options(name: str, options: dict[str, object]) -> dict[str, object]:
    """Defaults merged with ``options``, each checked; unknown names raise TypeError."""
    allowed = {**_SPLIT_OPTIONS, **_SPECS[name].options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"options: got {', '.join(unknown)} for dataset {name!r}, expected "
                        f"some of {', '.join(allowed)}")
    return {key: _OPTION_CHECKS[key](key, value) for key, value in {**allowed, **options}.items()}


def load_dataset(name: str, data_dir: object = None, **options: object) -> tuple[Split, Split]:
    """Load dataset ``name`` as ``((x_train, y_train), (x_test, y_test))``.

    x: float32 (N, C, H, W) in [0, 1]; y: int64 (N,) in [0, num_classes). ``data_dir`` is the
    directory holding the files (None: the dataset's default, if it has one; must be None for
    "digits" and "synthetic"). ``options``: ``n_train`` / ``n_test`` for every dataset, plus
    those of the dataset (see its loader's docstring). Never downloads anything.
    """
    spec = _spec(name)
    directory = v.directory("data_dir", data_dir)
    return spec.load(directory, **_options(name, options))


def dataset_info(name: str, **options: object) -> DatasetInfo:
    """``DatasetInfo(input_shape=(C, H, W), num_classes)`` of ``name``, without reading files.

    ``options`` matter only for "synthetic" (input_shape, num_classes) and are checked as
    load_dataset checks them.
    """
    spec = _spec(name)
    checked = _options(name, options)
    if spec.info is not None:
        return spec.info
    return DatasetInfo(checked["input_shape"], checked["num_classes"])


def class_names(name: str, **options: object) -> tuple[str, ...]:
    """Human-readable class names of ``name``, index i naming class i."""
    spec = _spec(name)
    info = dataset_info(name, **options)
    if spec.class_names is not None:
        return spec.class_names
    return tuple(f"class {i}" for i in range(info.num_classes))
