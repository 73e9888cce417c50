"""impls.data: every loader on tiny files written here, good and corrupt, plus batching.

Each file format gets a fixture writer; each corruption is one row of data (what is written,
the exception, fragments its message must hold: the file, what was found, what was expected).
The real Fashion-MNIST files are loaded once when Debian's dataset-fashion-mnist is installed.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from impls import data as D

RNG = np.random.default_rng(1234)
MNIST_TRAIN = (RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([0, 9, 3, 3, 7]))
MNIST_TEST = (RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.array([1, 2, 9]))
CIFAR_ROWS = 4  # per training batch; 5 batches
CIFAR_TRAIN = [(RNG.integers(0, 256, (CIFAR_ROWS, 3072), dtype=np.uint8),
                [int(c) for c in RNG.integers(0, 10, CIFAR_ROWS)]) for _ in range(5)]
CIFAR_TEST = (RNG.integers(0, 256, (3, 3072), dtype=np.uint8), [0, 5, 9])
SIGNS_TRAIN = (RNG.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8), np.arange(6))
SIGNS_TEST = (RNG.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8), np.array([5, 0, 2, 2]))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _raises(call, exception, fragments):
    """Run call, expect exception with every fragment in its message; return the message."""
    with pytest.raises(exception) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def _check_split(split, n, shape, labels=None):
    x, y = split
    assert x.shape == (n, *shape) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    if labels is not None:
        np.testing.assert_array_equal(y, labels)


# ---------------------------------------------------------------------------------------------
# argument checks (called without iterating: batches must check at the call)

X10, Y10 = np.arange(20.0).reshape(10, 2), np.arange(10)

BAD_ARGUMENTS = [
    ("name-not-a-string", lambda: D.load_dataset(3), TypeError, "name: got 3, expected one of"),
    ("name-unknown", lambda: D.load_dataset("MNIST"), ValueError,
     "name: got 'MNIST', expected one of digits, mnist, fashion-mnist"),
    ("info-name-unknown", lambda: D.dataset_info("imagenet"), ValueError, "name: got 'imagenet'"),
    ("option-misspelt", lambda: D.load_dataset("digits", n_trian=5), TypeError,
     "options: got n_trian for dataset 'digits', expected some of n_train, n_test"),
    ("option-for-another-dataset", lambda: D.dataset_info("mnist", noise=0.1), TypeError,
     "options: got noise for dataset 'mnist'"),
    ("n-train-negative", lambda: D.load_dataset("synthetic", n_train=-1), ValueError,
     "n_train: got -1, expected an integer >= 1"),
    # an empty split trains and evaluates to NaN metrics
    ("n-train-zero", lambda: D.load_dataset("synthetic", n_train=0), ValueError,
     "n_train: got 0, expected an integer >= 1"),
    ("n-test-zero", lambda: D.dataset_info("digits", n_test=0), ValueError,
     "n_test: got 0, expected an integer >= 1"),
    ("n-test-float", lambda: D.load_dataset("synthetic", n_test=2.5), TypeError,
     "n_test: got 2.5, expected an integer"),
    ("n-train-too-many", lambda: D.load_dataset("digits", n_train=5000), ValueError,
     "n_train: got 5000, expected at most 1347"),
    ("test-size-above-one", lambda: D.load_dataset("digits", test_size=1.5), ValueError,
     "test_size: got 1.5, expected a finite number in (0, 1)"),
    ("digits-with-data-dir", lambda: D.load_dataset("digits", data_dir="/tmp"), ValueError,
     "data_dir: got '/tmp', expected None ('digits' reads no files)"),
    ("mnist-without-data-dir", lambda: D.load_dataset("mnist"), ValueError,
     "data_dir: got None, expected the directory holding the 'mnist' files"),
    ("data-dir-not-a-path", lambda: D.load_dataset("mnist", data_dir=5), TypeError,
     "data_dir: got 5, expected a path"),
    ("synthetic-shape-2d", lambda: D.dataset_info("synthetic", input_shape=(28, 28)),
     ValueError, "input_shape: got (28, 28) with 2 entries, expected 3 positive integers"),
    ("synthetic-shape-zero", lambda: D.load_dataset("synthetic", input_shape=(1, 0, 3)),
     ValueError, "input_shape: got 0, expected an integer >= 1"),
    ("synthetic-no-classes", lambda: D.load_dataset("synthetic", num_classes=0), ValueError,
     "num_classes: got 0, expected an integer >= 1"),
    ("synthetic-negative-noise", lambda: D.load_dataset("synthetic", noise=-1.0), ValueError,
     "noise: got -1.0"),
    ("synthetic-bool-seed", lambda: D.load_dataset("synthetic", seed=True), TypeError,
     "seed: got True, expected an integer"),
    ("batches-x-list", lambda: D.batches([1, 2], Y10, 2), TypeError,
     "x: got [1, 2], expected a NumPy array"),
    ("batches-y-short", lambda: D.batches(X10, Y10[:3], 2), ValueError,
     "y: got 3 samples (shape (3,)), expected 10 to match x"),
    ("batches-size-zero", lambda: D.batches(X10, Y10, 0), ValueError,
     "batch_size: got 0, expected an integer >= 1"),
    ("batches-size-bool", lambda: D.batches(X10, Y10, True), TypeError, "batch_size: got True"),
    ("batches-nothing-left", lambda: D.batches(X10, Y10, 11, drop_last=True), ValueError,
     "batch_size: got 11 with drop_last=True and 10 samples, expected at most 10"),
    ("batches-seed-negative", lambda: D.batches(X10, Y10, 2, seed=-1), ValueError,
     "seed: got -1, expected an integer >= 0"),
    ("batches-shuffle-word", lambda: D.batches(X10, Y10, 2, shuffle="yes"), TypeError,
     "shuffle: got 'yes', expected True or False"),
    ("batches-epoch-negative", lambda: D.batches(X10, Y10, 2, epoch=-1), ValueError,
     "epoch: got -1"),
    ("loader-size-float", lambda: D.Batches(X10, Y10, 2.0), TypeError, "batch_size: got 2.0"),
    ("loader-epoch-float", lambda: D.Batches(X10, Y10, 2).epoch(0.5), TypeError,
     "epoch: got 0.5"),
]


@pytest.mark.parametrize("call, exception, fragment", [row[1:] for row in BAD_ARGUMENTS],
                         ids=[row[0] for row in BAD_ARGUMENTS])
def test_bad_argument_is_rejected_with_a_message_naming_it(call, exception, fragment):
    _raises(call, exception, [fragment])


def test_dataset_info_needs_no_files():
    assert D.DATASETS == ("digits", "mnist", "fashion-mnist", "cifar10", "signs", "synthetic")
    expected = {"digits": ((1, 8, 8), 10), "mnist": ((1, 28, 28), 10),
                "fashion-mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10),
                "signs": ((3, 64, 64), 6), "synthetic": ((1, 28, 28), 10)}
    for name, (shape, classes) in expected.items():
        input_shape, num_classes = D.dataset_info(name)
        assert (input_shape, num_classes) == (shape, classes)
        assert len(D.class_names(name)) == classes
    assert D.dataset_info("synthetic", input_shape=[3, 5, 7], num_classes=4) == ((3, 5, 7), 4)
    assert D.class_names("fashion-mnist")[9] == "Ankle boot"


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_split_is_fixed_stratified_and_complete():
    pytest.importorskip("sklearn", reason="digits needs scikit-learn (the 'report' extra)")
    from sklearn.datasets import load_digits

    (x_tr, y_tr), (x_te, y_te) = D.load_dataset("digits")
    _check_split((x_tr, y_tr), 1347, (1, 8, 8))
    _check_split((x_te, y_te), 450, (1, 8, 8))
    assert x_tr.max() == 1.0  # 16 / 16: scaled by 16, not by 255
    again = D.load_dataset("digits")
    np.testing.assert_array_equal(again[0][0], x_tr)
    np.testing.assert_array_equal(again[1][1], y_te)
    # stratified: each class's test share is 25% to within one image
    counts = np.bincount(np.concatenate([y_tr, y_te]), minlength=10)
    assert np.all(np.abs(np.bincount(y_te, minlength=10) - 0.25 * counts) <= 1)
    # complete and exact: train + test are the 1797 images, each once, values / 16
    digits = load_digits()
    ours = np.concatenate([x_tr, x_te]).reshape(1797, 64) * 16
    assert sorted(map(bytes, ours.astype(np.uint8))) == sorted(
        map(bytes, digits.data.astype(np.uint8)))
    (x_small, _), (_, y_small) = D.load_dataset("digits", n_train=10, n_test=5)
    np.testing.assert_array_equal(x_small, x_tr[:10])
    np.testing.assert_array_equal(y_small, y_te[:5])
    assert not np.array_equal(D.load_dataset("digits", seed=1)[1][1], y_te)


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    for module in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import` raise ImportError
    _raises(lambda: D.load_dataset("digits"), ImportError,
            ["'digits' needs scikit-learn", "pip install 'cnn-rosetta[report]'"])


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (IDX)


def _idx(array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def _write_mnist(directory, gz, names=("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
    directory.mkdir(exist_ok=True)
    for name, array in zip(names, (*MNIST_TRAIN, *MNIST_TEST)):
        content = _idx(array)
        (directory / (name + ".gz" if gz else name)).write_bytes(
            gzip.compress(content) if gz else content)
    return directory


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_files_load_as_nchw_in_unit_range(tmp_path, gz, name):
    (x_tr, y_tr), (x_te, y_te) = D.load_dataset(name, _write_mnist(tmp_path / "d", gz))
    _check_split((x_tr, y_tr), 5, (1, 28, 28), MNIST_TRAIN[1])
    _check_split((x_te, y_te), 3, (1, 28, 28), MNIST_TEST[1])
    np.testing.assert_array_equal(x_tr[:, 0] * 255, MNIST_TRAIN[0].astype(np.float32))
    np.testing.assert_array_equal(x_te[:, 0], MNIST_TEST[0] / np.float32(255))


def test_idx_kaggle_names_and_first_n(tmp_path):
    names = ("train-images.idx3-ubyte", "train-labels.idx1-ubyte", "t10k-images.idx3-ubyte",
             "t10k-labels.idx1-ubyte")
    directory = _write_mnist(tmp_path / "d", gz=False, names=names)
    (x_tr, y_tr), (x_te, y_te) = D.load_dataset("mnist", str(directory), n_train=2, n_test=1)
    _check_split((x_tr, y_tr), 2, (1, 28, 28), MNIST_TRAIN[1][:2])
    _check_split((x_te, y_te), 1, (1, 28, 28), MNIST_TEST[1][:1])
    _raises(lambda: D.load_dataset("mnist", directory, n_test=4), ValueError,
            ["n_test: got 4, expected at most 3", "test files"])


_IMAGES = _idx(MNIST_TRAIN[0])
# (id, file to overwrite, gzipped dir, content, exception, message fragments)
BAD_IDX = [
    ("bad-magic", "train-images-idx3-ubyte", False, _idx(MNIST_TRAIN[0], magic=0x801),
     ValueError, ["train-images-idx3-ubyte", "got magic number 0x00000801",
                  "expected 0x00000803"]),
    ("labels-magic-in-images", "t10k-labels-idx1-ubyte", False, _idx(MNIST_TEST[0]),
     ValueError, ["t10k-labels-idx1-ubyte", "got magic number 0x00000803",
                  "expected 0x00000801"]),
    ("truncated-payload", "train-images-idx3-ubyte", False, _IMAGES[:-10], ValueError,
     ["got 3910 bytes of data after the header, expected 3920 = 5 x 28 x 28"]),
    ("trailing-bytes", "train-images-idx3-ubyte", False, _IMAGES + b"\0", ValueError,
     ["got 3921 bytes of data after the header, expected 3920"]),
    ("truncated-header", "train-images-idx3-ubyte", False, _IMAGES[:9], ValueError,
     ["got 9 bytes, expected at least 16"]),
    ("empty-file", "train-labels-idx1-ubyte", False, b"", ValueError,
     ["got 0 bytes, expected at least a 4-byte IDX magic number 0x00000801"]),
    ("label-out-of-range", "train-labels-idx1-ubyte", False, _idx([0, 9, 3, 10, 7]),
     ValueError, ["train-labels-idx1-ubyte", "got labels in [0, 10], expected classes in [0, 9]"]),
    ("count-mismatch", "train-labels-idx1-ubyte", False, _idx([0, 9, 3, 3]), ValueError,
     ["got 5 images and 4 labels, expected as many labels as images"]),
    ("wrong-image-size", "t10k-images-idx3-ubyte", False, _idx(MNIST_TEST[0][:, :27]),
     ValueError, ["got images of shape (27, 28), expected (28, 28) per sample"]),
    ("corrupt-gzip", "train-images-idx3-ubyte.gz", True, b"\x1f\x8b" + b"junk" * 8,
     ValueError, ["train-images-idx3-ubyte.gz", "corrupt or truncated gzip"]),
    ("truncated-gzip", "t10k-images-idx3-ubyte.gz", True, gzip.compress(_IMAGES)[:-20],
     ValueError, ["t10k-images-idx3-ubyte.gz", "corrupt or truncated gzip"]),
]



def _gz_bomb(dims, payload=b""):
    """A tiny .gz whose IDX header declares ``dims`` (and whose data is ``payload``)."""
    return gzip.compress(struct.pack(f">I{len(dims)}I", 0x800 + len(dims), *dims) + payload)


BAD_IDX += [
    # issue 10: a 254 KiB .gz used to be inflated to 512 MiB before its header was read; the
    # header now comes first, and its size must fit what gzip can inflate the file to
    ("gz-header-declares-too-much", "train-images-idx3-ubyte.gz", True,
     _gz_bomb((1_000_000, 28, 28)), ValueError,
     ["train-images-idx3-ubyte.gz", "got a header declaring 1000000 x 28 x 28 = 784000000 "
      "bytes", "gzip inflates its"]),
    # dims whose product overflows int64 (2^32-1 cubed): checked with Python integers
    ("dims-overflow-int64", "train-images-idx3-ubyte", False,
     struct.pack(">4I", 0x803, 2**32 - 1, 2**32 - 1, 2**32 - 1), ValueError,
     ["train-images-idx3-ubyte", "got 0 bytes of data after the header, expected "
      f"{(2**32 - 1) ** 3} = 4294967295 x 4294967295 x 4294967295"]),
    ("gz-more-data-than-declared", "train-labels-idx1-ubyte.gz", True,
     _gz_bomb((3,), b"\0" * 5), ValueError,
     ["train-labels-idx1-ubyte.gz", "got more than 3 bytes of data after the header"]),
    ("no-images", "t10k-images-idx3-ubyte", False, _idx(np.zeros((0, 28, 28))), ValueError,
     ["t10k-images-idx3-ubyte", "got 0 images, expected at least 1"]),
]


@pytest.mark.parametrize("file, gz, content, exception, fragments",
                         [row[1:] for row in BAD_IDX], ids=[row[0] for row in BAD_IDX])
def test_corrupt_idx_file_is_refused(tmp_path, file, gz, content, exception, fragments):
    directory = _write_mnist(tmp_path / "d", gz)
    (directory / file).write_bytes(content)
    _raises(lambda: D.load_dataset("mnist", directory), exception, fragments)


def test_a_gz_bomb_is_never_inflated(tmp_path, monkeypatch):
    """The declared size is checked before allocating; the data is inflated in chunks."""
    directory = _write_mnist(tmp_path / "d", gz=True)
    # 1 MiB of zeros compresses to ~1 KiB: a header that declares as much passes the size
    # check, but the stream holds less and is refused at its end, never read whole
    (directory / "train-images-idx3-ubyte.gz").write_bytes(
        _gz_bomb((1337, 28, 28), b"\0" * 2**20))
    reads = []
    real = gzip.GzipFile.readinto
    monkeypatch.setattr(gzip.GzipFile, "readinto",
                        lambda self, b: reads.append(len(b)) or real(self, b))
    _raises(lambda: D.load_dataset("mnist", directory), ValueError,
            ["train-images-idx3-ubyte.gz", "got more than 1048208 bytes of data"])
    assert reads and max(reads) <= 2**20  # bounded chunks


def test_an_unreadable_file_names_itself(tmp_path, monkeypatch):
    directory = _write_mnist(tmp_path / "d", gz=False)
    if os.geteuid() == 0:  # root reads every file: make open() refuse as it would
        import builtins

        from impls.data import formats

        def refuse(path, *args, **kwargs):
            if str(path).endswith("train-labels-idx1-ubyte"):
                raise PermissionError(13, "Permission denied", str(path))
            return builtins.open(path, *args, **kwargs)

        monkeypatch.setattr(formats, "open", refuse, raising=False)
    (directory / "train-labels-idx1-ubyte").chmod(0)
    _raises(lambda: D.load_dataset("mnist", directory), PermissionError,
            ["train-labels-idx1-ubyte: permission denied, expected a readable file"])


def test_missing_idx_file_and_directory_say_how_to_get_them(tmp_path):
    directory = _write_mnist(tmp_path / "d", gz=True)
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    _raises(lambda: D.load_dataset("mnist", directory), FileNotFoundError,
            ["got no t10k-labels-idx1-ubyte or", "t10k-labels-idx1-ubyte.gz", str(directory)])
    _raises(lambda: D.load_dataset("fashion-mnist", tmp_path / "absent"), FileNotFoundError,
            ["'" + str(tmp_path / "absent") + "' does not exist",
             "apt-get install dataset-fashion-mnist"])


@pytest.fixture(scope="module")
def fashion_mnist():
    if not FASHION_DIR.is_dir():
        pytest.skip(f"{FASHION_DIR} absent: Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
    return D.load_dataset("fashion-mnist")


def test_real_fashion_mnist_from_the_debian_package(fashion_mnist):
    (x_tr, y_tr), (x_te, y_te) = fashion_mnist
    _check_split((x_tr, y_tr), 60000, (1, 28, 28))
    _check_split((x_te, y_te), 10000, (1, 28, 28))
    # Fashion-MNIST is balanced: 6000 / 1000 images per class
    np.testing.assert_array_equal(np.bincount(y_tr), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_te), [1000] * 10)
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0
    pixels = np.round(x_te[:100] * 255)  # the file's bytes, back from k / 255
    np.testing.assert_array_equal(pixels / np.float32(255), x_te[:100])


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (pickles)


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be edited
    """Writes str and bytes as Python 2 did (SHORT_BINSTRING / BINSTRING), like CIFAR's files."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        head = (pickle.SHORT_BINSTRING + bytes([n]) if n < 256
                else pickle.BINSTRING + struct.pack("<i", n))
        self.write(head + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def _py2_pickle(obj):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # NumPy 1.x (and so every CIFAR file) names the array rebuilder numpy.core.multiarray
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def _batch(data, labels, style="py3"):
    batch = {b"batch_label": b"fixture", b"labels": labels, b"data": data,
             b"filenames": [b"img%d.png" % i for i in range(len(data))]}
    return _py2_pickle(batch) if style == "py2" else pickle.dumps(batch, protocol=4)


def _write_cifar(directory, style="py3"):
    directory.mkdir(parents=True, exist_ok=True)
    for i, (data, labels) in enumerate(CIFAR_TRAIN, start=1):
        (directory / f"data_batch_{i}").write_bytes(_batch(data, labels, style))
    (directory / "test_batch").write_bytes(_batch(*CIFAR_TEST, style))
    return directory


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar10_batches_load_as_nchw(tmp_path, style):
    directory = _write_cifar(tmp_path / "cifar-10-batches-py", style)
    (x_tr, y_tr), (x_te, y_te) = D.load_dataset("cifar10", tmp_path)  # the parent works too
    _check_split((x_tr, y_tr), 5 * CIFAR_ROWS, (3, 32, 32),
                 np.concatenate([labels for _, labels in CIFAR_TRAIN]))
    _check_split((x_te, y_te), 3, (3, 32, 32), CIFAR_TEST[1])
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each plane row-major
    data = CIFAR_TRAIN[1][0]
    assert x_tr[CIFAR_ROWS + 2, 1, 5, 7] * 255 == data[2, 1024 + 5 * 32 + 7]
    np.testing.assert_array_equal(x_te.reshape(3, 3072) * 255, CIFAR_TEST[0])
    assert D.load_dataset("cifar10", directory)[0][0].shape == (20, 3, 32, 32)


def test_cifar10_reads_only_the_batches_n_train_needs(tmp_path):
    directory = _write_cifar(tmp_path / "c")
    for i in (3, 4, 5):
        (directory / f"data_batch_{i}").unlink()
    (x_tr, y_tr), (x_te, _) = D.load_dataset("cifar10", directory, n_train=6, n_test=2)
    _check_split((x_tr, y_tr), 6, (3, 32, 32), CIFAR_TRAIN[0][1] + CIFAR_TRAIN[1][1][:2])
    assert x_te.shape == (2, 3, 32, 32)
    _raises(lambda: D.load_dataset("cifar10", directory), FileNotFoundError,
            ["got no data_batch_3", "cs.toronto.edu"])


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


# protocol 2 names builtins by their Python 2 module, __builtin__
@pytest.mark.parametrize("payload, protocol, refused", [
    (_System, 2, f"{os.system.__module__}.system"), (_Eval, 2, "__builtin__.eval"),
    (_Eval, 5, "builtins.eval"),
], ids=["os.system", "eval-protocol-2", "eval-protocol-5"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload, protocol, refused):
    directory = _write_cifar(tmp_path / "c")
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": payload(marker), b"labels": [0]}, protocol=protocol)
    (directory / "data_batch_2").write_bytes(evil)
    _raises(lambda: D.load_dataset("cifar10", directory), pickle.UnpicklingError,
            ["data_batch_2", f"asks for the global {refused}", "refused without running it"])
    assert not marker.exists()


_DATA, _LABELS = CIFAR_TEST
# (id, pickled content of test_batch, message fragments); all raise ValueError
BAD_CIFAR = [
    ("float-data", _batch(_DATA.astype(np.float32), _LABELS),
     ["test_batch", "dtype float32", "expected a uint8 array of shape (N, 3072)"]),
    ("wrong-row-length", _batch(_DATA[:, :3000], _LABELS), ["shape (3, 3000)"]),
    ("label-out-of-range", _batch(_DATA, [0, 10, 1]),
     ["got labels in [0, 10], expected classes in [0, 9]"]),
    ("count-mismatch", _batch(_DATA, [0, 1]), ["got 3 images and 2 labels"]),
    ("float-labels", _batch(_DATA, [0.0, 1.5, 2.0]), ["labels of dtype float64"]),
    ("not-a-dict", pickle.dumps([_DATA, _LABELS]), ["got a pickled list, expected a dict"]),
    ("no-labels", pickle.dumps({b"data": _DATA}), ["expected b'labels'"]),
    ("truncated", _batch(_DATA, _LABELS)[:-40], ["corrupt or truncated pickle"]),
    ("ragged-labels", _batch(_DATA, [0, [1, 2], 3]),
     ["test_batch", "got b'labels' that are not a flat list of integers"]),
]


class _Alloc:
    """A pickled call of the allow-listed np.ndarray(shape, dtype)."""

    def __init__(self, shape, dtype="u1"):
        self.shape, self.dtype = shape, dtype

    def __reduce__(self):
        return (np.ndarray, (self.shape, np.dtype(self.dtype)))


class _ObjectState:
    """An object array rebuilt from a list shorter than its shape (NumPy 2.4.6 segfaults)."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return (_reconstruct, (np.ndarray, (0,), b"b"),
                (1, (1000, 1000), np.dtype(object), False, [1]))


# issue 10: a 181-byte pickle asked np.ndarray for 3 TiB (MemoryError naming no file), a
# 240-byte one got 1.5 GiB; now any array must fit in what the file can account for
BIG_PICKLES = [
    ("3-TiB", {b"data": _Alloc((3 * 2**40,)), b"labels": [0]},
     ["asks for an array of shape (3298534883328,) and dtype uint8", "refused before "
      "allocating it"]),
    ("1.5-GiB", {b"data": _Alloc((50_000, 32_768)), b"labels": [0]},
     ["asks for an array of shape (50000, 32768)"]),
    ("huge-dtype", {b"data": _Alloc((10,), ("u1", (2**15, 2**15))), b"labels": [0]},
     ["asks for an array of shape (10,)"]),
    ("object-array", {b"data": _ObjectState(), b"labels": [0]},
     ["asks for an array of Python objects, expected numbers"]),
]


@pytest.mark.parametrize("content, fragments", [row[1:] for row in BIG_PICKLES],
                         ids=[row[0] for row in BIG_PICKLES])
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_pickle_cannot_allocate_more_than_its_file_holds(tmp_path, content, fragments,
                                                           protocol):
    directory = _write_cifar(tmp_path / "c")
    (directory / "test_batch").write_bytes(pickle.dumps(content, protocol=protocol))
    assert (directory / "test_batch").stat().st_size < 400
    _raises(lambda: D.load_dataset("cifar10", directory), ValueError,
            ["test_batch", *fragments])


@pytest.mark.parametrize("content, fragments", [row[1:] for row in BAD_CIFAR],
                         ids=[row[0] for row in BAD_CIFAR])
def test_corrupt_cifar_batch_is_refused(tmp_path, content, fragments):
    directory = _write_cifar(tmp_path / "c")
    (directory / "test_batch").write_bytes(content)
    _raises(lambda: D.load_dataset("cifar10", directory), ValueError, fragments)


# ---------------------------------------------------------------------------------------------
# SIGNS (HDF5)


def _write_signs(directory, train=SIGNS_TRAIN, test=SIGNS_TEST, classes=6, drop=None,
                 group=None, external=None):
    """classes None: a scalar list_classes; group / external: that key as an HDF5 group, or
    as an external link to a file that does not exist."""
    h5py = pytest.importorskip("h5py", reason="signs needs h5py (the 'report' extra)")
    directory.mkdir(exist_ok=True)
    for split, (x, y) in (("train", train), ("test", test)):
        with h5py.File(directory / f"{split}_signs.h5", "w") as f:
            f["list_classes"] = np.arange(6)[0] if classes is None else np.arange(classes)
            for key, value in ((f"{split}_set_x", x), (f"{split}_set_y", y)):
                if key == group:
                    f.create_group(key)["inner"] = value
                elif key == external:
                    f[key] = h5py.ExternalLink(str(directory / "absent.h5"), "/x")
                elif key != drop:
                    f[key] = value
    return directory


def test_signs_h5_load_as_nchw(tmp_path):
    (x_tr, y_tr), (x_te, y_te) = D.load_dataset("signs", _write_signs(tmp_path / "s"),
                                                n_test=3)
    _check_split((x_tr, y_tr), 6, (3, 64, 64), SIGNS_TRAIN[1])
    _check_split((x_te, y_te), 3, (3, 64, 64), SIGNS_TEST[1][:3])
    assert x_tr[4, 2, 10, 20] * 255 == SIGNS_TRAIN[0][4, 10, 20, 2]  # NHWC -> NCHW
    np.testing.assert_array_equal(x_te.transpose(0, 2, 3, 1) * 255, SIGNS_TEST[0][:3])


_SX, _SY = SIGNS_TRAIN
# (id, keyword arguments of _write_signs, message fragments); all raise ValueError
BAD_SIGNS = [
    ("label-out-of-range", {"train": (_SX, np.array([0, 1, 2, 3, 4, 6]))},
     ["train_signs.h5", "got labels in [0, 6], expected classes in [0, 5]"]),
    ("missing-dataset", {"drop": "test_set_y"},
     ["test_signs.h5", "expected 'test_set_y'"]),
    ("float-images", {"train": (_SX.astype(np.float64), _SY)},
     ["dtype float64", "expected a uint8 array (N, 64, 64, 3)"]),
    ("grey-images", {"train": (_SX[..., :1], _SY)},
     ["got images of shape (64, 64, 1), expected (64, 64, 3) per sample (H, W, C)"]),
    ("count-mismatch", {"train": (_SX, _SY[:5])}, ["got 6 images and 5 labels"]),
    ("five-classes", {"classes": 5}, ["got 5 entries in 'list_classes', expected 6"]),
    ("scalar-list-classes", {"classes": None},
     ["train_signs.h5", "got a scalar in 'list_classes', expected 6 entries"]),
    ("x-is-a-group", {"group": "train_set_x"},
     ["train_signs.h5", "got 'train_set_x' as a Group, expected a dataset"]),
    ("external-link-to-a-missing-file", {"external": "test_set_x"},
     ["test_signs.h5", "got 'test_set_x' as a ExternalLink, expected a dataset stored in "
      "the file"]),
    ("no-images", {"train": (_SX[:0], _SY[:0])},
     ["train_signs.h5", "got 0 images, expected at least 1"]),
]


@pytest.mark.parametrize("kwargs, fragments", [row[1:] for row in BAD_SIGNS],
                         ids=[row[0] for row in BAD_SIGNS])
def test_corrupt_signs_file_is_refused(tmp_path, kwargs, fragments):
    directory = _write_signs(tmp_path / "s", **kwargs)
    _raises(lambda: D.load_dataset("signs", directory), ValueError, fragments)


def test_signs_not_hdf5_or_without_h5py(tmp_path, monkeypatch):
    directory = _write_signs(tmp_path / "s")
    (directory / "test_signs.h5").write_bytes(b"not an HDF5 file")
    _raises(lambda: D.load_dataset("signs", directory), ValueError,
            ["test_signs.h5", "expected an HDF5 file"])
    monkeypatch.setitem(sys.modules, "h5py", None)
    _raises(lambda: D.load_dataset("signs", directory), ImportError,
            ["'signs' needs h5py", "pip install"])


# ---------------------------------------------------------------------------------------------
# synthetic


def test_synthetic_is_deterministic_balanced_and_learnable():
    (x_tr, y_tr), (x_te, y_te) = D.load_dataset("synthetic", n_train=400, n_test=200,
                                                input_shape=(3, 6, 5), num_classes=4)
    _check_split((x_tr, y_tr), 400, (3, 6, 5))
    _check_split((x_te, y_te), 200, (3, 6, 5))
    np.testing.assert_array_equal(np.bincount(y_tr), [100] * 4)
    again = D.load_dataset("synthetic", n_train=400, n_test=200, input_shape=(3, 6, 5),
                           num_classes=4)
    np.testing.assert_array_equal(again[0][0], x_tr)
    # the test set does not depend on n_train; another seed gives other data
    other_n = D.load_dataset("synthetic", n_train=7, n_test=200, input_shape=(3, 6, 5),
                             num_classes=4)
    np.testing.assert_array_equal(other_n[1][0], x_te)
    other_seed = D.load_dataset("synthetic", n_train=400, n_test=200, input_shape=(3, 6, 5),
                                num_classes=4, seed=1)
    assert not np.array_equal(other_seed[0][0], x_tr)
    # learnable: nearest class mean, fitted on the training set, far above chance (25%)
    means = np.stack([x_tr[y_tr == k].reshape(-1, 90).mean(0) for k in range(4)])
    distances = ((x_te.reshape(-1, 1, 90) - means) ** 2).sum(-1)
    assert (distances.argmin(1) == y_te).mean() > 0.9


# ---------------------------------------------------------------------------------------------
# batching


def _epoch(batch_iter):
    xs, ys = zip(*batch_iter)
    return [len(y) for y in ys], np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("batch_size, drop_last, sizes", [
    (3, False, [3, 3, 3, 1]), (3, True, [3, 3, 3]), (10, False, [10]), (1, False, [1] * 10),
    (11, False, [10]),
])
def test_batches_cover_every_sample_once_per_epoch(batch_size, drop_last, sizes):
    got_sizes, xs, ys = _epoch(D.batches(X10, Y10, batch_size, drop_last=drop_last, epoch=3))
    assert got_sizes == sizes
    assert len(set(ys.tolist())) == len(ys) == sum(sizes)  # no sample twice
    np.testing.assert_array_equal(xs, X10[ys])  # x and y stay paired
    if not drop_last:
        np.testing.assert_array_equal(np.sort(ys), Y10)


def test_batch_order_is_fixed_by_seed_and_epoch():
    order = D.batch_order(10, seed=0, epoch=0)
    # pinned: a NumPy that changed its Generator streams would change every training run
    np.testing.assert_array_equal(order, [4, 6, 2, 7, 3, 5, 9, 0, 8, 1])
    np.testing.assert_array_equal(D.batch_order(10, seed=0, epoch=0), order)
    assert not np.array_equal(D.batch_order(10, seed=0, epoch=1), order)
    assert not np.array_equal(D.batch_order(10, seed=1, epoch=0), order)
    np.testing.assert_array_equal(D.batch_order(10, shuffle=False, seed=5, epoch=2), Y10)
    _, _, ys = _epoch(D.batches(X10, Y10, 4, seed=0, epoch=0))
    np.testing.assert_array_equal(ys, order)
    _, _, ys = _epoch(D.batches(X10, Y10, 4, shuffle=False))
    np.testing.assert_array_equal(ys, Y10)


def test_batches_object_walks_one_epoch_per_iteration():
    loader = D.Batches(X10, Y10, 4, seed=7)
    assert len(loader) == 3 and len(D.Batches(X10, Y10, 4, drop_last=True)) == 2
    first, second = _epoch(loader)[2], _epoch(loader)[2]
    np.testing.assert_array_equal(first, _epoch(D.batches(X10, Y10, 4, seed=7, epoch=0))[2])
    np.testing.assert_array_equal(second, _epoch(loader.epoch(1))[2])
    assert not np.array_equal(first, second) and loader.next_epoch == 2
    xb, _ = next(iter(loader.epoch(0)))
    xb[:] = -1  # batches are copies: the dataset is untouched
    assert X10.min() == 0
