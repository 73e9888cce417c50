"""File formats: IDX (MNIST), CIFAR's Python pickles, and HDF5, read without trusting the file.

Every reader checks what it parses and raises ValueError naming the file, what it found and
what it expected; nothing here knows about particular datasets (loaders.py does).
"""

from __future__ import annotations

import codecs
import gzip
import io
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


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they start with the gzip magic (whatever the name)."""
    data = path.read_bytes()
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: got a corrupt or truncated gzip stream ({exc}), expected a "
                         "valid .gz file") from exc


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped or not) into a uint8 array.

    Layout: a big-endian uint32 magic number 0x000008DD (0x08 = unsigned byte, DD = number of
    dimensions), DD big-endian uint32 sizes, then exactly prod(sizes) bytes in C order.
    ``magic`` is the number expected: IDX_IMAGES or IDX_LABELS. The result is a read-only view
    of the file's bytes.
    """
    data = read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: got {len(data)} bytes, expected at least a 4-byte IDX "
                         f"magic number 0x{magic:08X}")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise ValueError(f"{path}: got magic number 0x{got:08X}, expected 0x{magic:08X} "
                         f"(IDX, unsigned bytes, {magic & 0xFF} dimension(s))")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: got {len(data)} bytes, expected at least {header} (the IDX "
                         f"header with {ndim} dimension sizes)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header
    if payload != expected:
        raise ValueError(f"{path}: got {payload} bytes of data after the header, expected "
                         f"{expected} = {' x '.join(map(str, dims))} (truncated or corrupt file)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


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


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds NumPy arrays and plain containers, and refuses any other global.

    Pickle runs whatever callable a file names (os.system included), so a downloaded pickle is
    only safe to load if every global it asks for is on an allow-list; dicts, lists, tuples,
    ints, floats, strings and bytes need no global at all.
    """

    def __init__(self, file: io.BufferedIOBase, path: Path):
        # encoding="bytes": CIFAR's batches were pickled by Python 2, whose str is bytes
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in _PICKLE_GLOBALS))
            raise RefusedGlobal(
                f"{self._path}: got a pickle that asks for the global {module}.{name}, expected "
                f"only NumPy arrays and plain containers ({allowed}); refused without running it"
            ) from None


def load_pickle(path: Path) -> object:
    """Unpickle ``path`` with RestrictedUnpickler.

    A refused global raises RefusedGlobal (a pickle.UnpicklingError); a broken stream raises
    ValueError naming the file.
    """
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, path).load()
        except RefusedGlobal:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
                KeyError) as exc:
            raise ValueError(f"{path}: got a corrupt or truncated pickle ({type(exc).__name__}: "
                             f"{exc}), expected a pickled dict") from exc
