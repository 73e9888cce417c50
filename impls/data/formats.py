"""File formats: IDX (MNIST), CIFAR's Python pickles, and HDF5, read without trusting the file.

Every reader checks what it parses and raises ValueError naming the file, what it found and
what it expected; nothing here knows about particular datasets (loaders.py does).
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import os
import pickle
import zlib
from pathlib import Path

import numpy as np

try:  # NumPy >= 2 moved the private core modules; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

IDX_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions (N, H, W)
IDX_LABELS = 0x00000801  # unsigned bytes, 1 dimension (N,)
_GZIP_MAGIC = b"\x1f\x8b"


# DEFLATE's best case: 258-byte matches coded in 2 bits, about 1032 bytes out per byte in. A
# gzip file that declares more than this many times its size is lying (a "zip bomb").
MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20  # bytes decompressed at a time


def open_readable(path: Path):
    """``open(path, "rb")``, with a one-line error naming the file when it is not readable."""
    try:
        return open(path, "rb")
    except PermissionError:
        raise PermissionError(f"{path}: permission denied, expected a readable file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: got a directory, expected a file") from None


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic (whatever the name).
    Only for small files: the IDX reader streams instead."""
    with open_readable(path) as handle:
        data = handle.read()
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: got a corrupt or truncated gzip stream ({exc}), expected a "
                         "valid .gz file") from exc


def _read_up_to(stream, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped or not) into a uint8 array.

    Layout: a big-endian uint32 magic number 0x000008DD (0x08 = unsigned byte, DD = number of
    dimensions), DD big-endian uint32 sizes, then exactly prod(sizes) bytes in C order.
    ``magic`` is the number expected: IDX_IMAGES or IDX_LABELS.

    The header is read first and the size it declares checked against what the file can hold
    (its size; gzipped, at most MAX_DEFLATE_RATIO times its size) before anything is
    allocated; a .gz is decompressed in bounded chunks straight into the array, so a small
    file cannot make the reader allocate or inflate more than it really holds.
    """
    with open_readable(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            return _parse_idx(path, stream, magic, size, gz)
        except (OSError, EOFError, zlib.error) as exc:
            if not gz:
                raise
            raise ValueError(f"{path}: got a corrupt or truncated gzip stream ({exc}), "
                             "expected a valid .gz file") from exc


def _parse_idx(path: Path, stream, magic: int, size: int, gz: bool) -> np.ndarray:
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    head = _read_up_to(stream, header)
    if len(head) < 4:
        raise ValueError(f"{path}: got {len(head)} bytes, expected at least a 4-byte IDX "
                         f"magic number 0x{magic:08X}")
    got = int.from_bytes(head[:4], "big")
    if got != magic:
        raise ValueError(f"{path}: got magic number 0x{got:08X}, expected 0x{magic:08X} "
                         f"(IDX, unsigned bytes, {magic & 0xFF} dimension(s))")
    if len(head) < header:
        raise ValueError(f"{path}: got {len(head)} bytes, expected at least {header} (the IDX "
                         f"header with {ndim} dimension sizes)")
    dims = tuple(int.from_bytes(head[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    expected = math.prod(dims)  # a Python int: no int64 overflow, however large
    shape = " x ".join(map(str, dims))
    if not gz and size - header != expected:
        raise ValueError(f"{path}: got {size - header} bytes of data after the header, "
                         f"expected {expected} = {shape} (truncated or corrupt file)")
    if gz and expected > size * MAX_DEFLATE_RATIO:
        raise ValueError(f"{path}: got a header declaring {shape} = {expected} bytes, "
                         f"expected at most {size * MAX_DEFLATE_RATIO} (gzip inflates its "
                         f"{size} bytes at most {MAX_DEFLATE_RATIO} times)")
    out = np.empty(expected, dtype=np.uint8)
    view, filled = memoryview(out), 0
    while filled < expected:
        n = stream.readinto(view[filled:filled + _CHUNK])
        if not n:
            break
        filled += n
    if filled < expected or stream.read(1):
        got = f"{filled}" if filled < expected else f"more than {expected}"
        raise ValueError(f"{path}: got {got} bytes of data after the header, expected "
                         f"{expected} = {shape} (truncated or corrupt file)")
    out.flags.writeable = False
    return out.reshape(dims)


# ---------------------------------------------------------------------------------------------
# restricted unpickling

# Every global a pickled dict of NumPy arrays, lists, ints and bytes can name, whichever
# Python/NumPy wrote it; the objects come from this table, so find_class never imports by name.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,  # NumPy 1.x, protocol <= 4
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,  # NumPy 2.x
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes as _codecs.encode(str, "latin1") under protocol 2
    ("_codecs", "encode"): codecs.encode,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the allow-list; nothing it names was called."""


class PickleTooLarge(ValueError):
    """A pickle asked for more memory than the file can account for; nothing was allocated."""


# Every array a pickle allocates must be accounted for by the file: its data comes from the
# file's own bytes (or a call names a size it does not hold). A budget of twice the file's
# size (plus a little, for the empty arrays _reconstruct makes before BUILD fills them)
# admits every honest pickle and refuses a 181-byte one asking np.ndarray for 3 TiB.
_BUDGET_SLACK = 1 << 16


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds NumPy arrays and plain containers, and refuses any other global.

    Pickle runs whatever callable a file names (os.system included), so a downloaded pickle is
    only safe to load if every global it asks for is on an allow-list; dicts, lists, tuples,
    ints, floats, strings and bytes need no global at all. The allowed callables that allocate
    (``np.ndarray(shape, dtype)``, ``_reconstruct``) are wrapped: the size they are asked for
    is checked against the file's size before anything is allocated (PickleTooLarge).
    """

    def __init__(self, file: io.BufferedIOBase, path: Path, size: int):
        # encoding="bytes": CIFAR's batches were pickled by Python 2, whose str is bytes
        super().__init__(file, encoding="bytes")
        self._path = path
        self._budget = 2 * size + _BUDGET_SLACK

    def _allocate(self, shape: object, dtype: object) -> None:
        dims = (shape,) if isinstance(shape, int) else shape
        if not isinstance(dims, tuple) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
            raise PickleTooLarge(f"{self._path}: got a pickle that asks for an array of shape "
                                 f"{shape!r}, expected a tuple of sizes >= 0")
        try:
            itemsize = np.dtype(dtype).itemsize
        except (TypeError, ValueError) as exc:
            raise PickleTooLarge(f"{self._path}: got a pickle that asks for an array of dtype "
                                 f"{dtype!r} ({exc}), expected a NumPy dtype") from None
        nbytes = math.prod(dims) * max(itemsize, 1)  # Python ints: no overflow
        if nbytes > self._budget:
            raise PickleTooLarge(f"{self._path}: got a pickle that asks for an array of shape "
                                 f"{dims} and dtype {np.dtype(dtype)} ({nbytes} bytes), "
                                 f"expected at most {self._budget} bytes for a "
                                 "file of this size; refused before allocating it")
        self._budget -= nbytes

    def find_class(self, module: str, name: str) -> object:
        try:
            found = _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in _PICKLE_GLOBALS))
            raise RefusedGlobal(
                f"{self._path}: got a pickle that asks for the global {module}.{name}, expected "
                f"only NumPy arrays and plain containers ({allowed}); refused without running it"
            ) from None
        if found is np.ndarray:
            def ndarray(shape, dtype=float, *args):
                self._allocate(shape, dtype)
                return np.ndarray(shape, dtype, *args)
            ndarray.wraps = np.ndarray  # what _reconstruct below is handed as its class
            return ndarray
        if found is _multiarray._reconstruct:
            def reconstruct(cls, shape, dtype):
                cls = getattr(cls, "wraps", cls)
                if cls is not np.ndarray:
                    raise PickleTooLarge(f"{self._path}: got a pickle that rebuilds a "
                                         f"{cls!r}, expected numpy.ndarray")
                self._allocate(shape, dtype)
                return _multiarray._reconstruct(cls, shape, dtype)
            return reconstruct
        if found is np.dtype:
            def dtype(*args):
                made = np.dtype(*args)
                # an object array's BUILD takes a list of objects, and NumPy (2.4.6) crashes
                # (SIGSEGV) on one shorter than the shape: no data file needs objects
                if made.hasobject:
                    raise PickleTooLarge(f"{self._path}: got a pickle that asks for an array "
                                         "of Python objects, expected numbers")
                return made
            return dtype
        if found is codecs.encode:
            def encode(text, encoding="utf-8", errors="strict"):
                if encoding not in ("latin1", "latin-1"):
                    raise PickleTooLarge(f"{self._path}: got a pickle that encodes text as "
                                         f"{encoding!r}, expected latin1 (Python 2 bytes)")
                return codecs.encode(text, encoding, errors)
            return encode
        return found


def load_pickle(path: Path) -> object:
    """Unpickle ``path`` with RestrictedUnpickler.

    A refused global raises RefusedGlobal (a pickle.UnpicklingError); an array larger than
    the file can hold raises PickleTooLarge, a broken stream ValueError, both naming the file.
    """
    with open_readable(path) as f:
        try:
            return RestrictedUnpickler(f, path, os.fstat(f.fileno()).st_size).load()
        except (RefusedGlobal, PickleTooLarge):
            raise
        except MemoryError:
            raise ValueError(f"{path}: got a pickle that needs more memory than there is, "
                             "expected a CIFAR batch (about 30 MB)") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                KeyError, AttributeError) as exc:
            raise ValueError(f"{path}: got a corrupt or truncated pickle ({type(exc).__name__}: "
                             f"{exc}), expected a pickled dict") from exc
