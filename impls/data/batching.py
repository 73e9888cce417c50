"""Mini-batches in an order fixed by (seed, epoch), so every framework sees the same batches.

The order comes from NumPy alone (``np.random.default_rng([seed, epoch]).permutation(n)``), never
from a framework's RNG: given the same seed, the NumPy, PyTorch and TensorFlow training loops
step through identical batches, and each epoch has its own order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import _validate as v

Batch = tuple[np.ndarray, np.ndarray]  # (xb (B, ...), yb (B,))


def _check(x: object, y: object, batch_size: object, shuffle: object, seed: object,
           drop_last: object) -> tuple[np.ndarray, np.ndarray, int, bool, int, bool]:
    x = v.array("x", x)
    y = v.array("y", y)
    if len(y) != len(x):
        raise ValueError(f"y: got {len(y)} samples (shape {y.shape}), expected {len(x)} to "
                         f"match x (shape {x.shape})")
    batch_size = v.integer("batch_size", batch_size, 1)
    drop_last = v.boolean("drop_last", drop_last)
    if drop_last and batch_size > len(x):
        raise ValueError(f"batch_size: got {batch_size} with drop_last=True and {len(x)} "
                         f"samples, expected at most {len(x)} (no batch would be left)")
    return x, y, batch_size, v.boolean("shuffle", shuffle), v.integer("seed", seed, 0), drop_last


def batch_order(n: int, shuffle: bool = True, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """The sample indices of one epoch, int64 (n,): a permutation fixed by (seed, epoch).

    shuffle=False gives 0, 1, ..., n - 1 whatever the seed and epoch.
    """
    n = v.integer("n", n, 0)
    shuffle, seed = v.boolean("shuffle", shuffle), v.integer("seed", seed, 0)
    epoch = v.integer("epoch", epoch, 0)
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def _num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


def _iterate(x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int,
             drop_last: bool) -> Iterator[Batch]:
    for i in range(_num_batches(len(order), batch_size, drop_last)):
        idx = order[i * batch_size:(i + 1) * batch_size]  # (B,)
        yield x[idx], y[idx]  # copies: a caller may change a batch in place


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0,
            drop_last: bool = False, epoch: int = 0) -> Iterator[Batch]:
    """Yield ``(xb, yb)`` mini-batches covering every sample of (x, y) once.

    x (N, ...), y (N,) or (N, ...); the order is ``batch_order(N, shuffle, seed, epoch)``; the
    last batch holds the remainder (N % batch_size samples) unless ``drop_last``. Arguments
    are checked here, at the call, not at the first ``next()``.
    """
    x, y, batch_size, shuffle, seed, drop_last = _check(x, y, batch_size, shuffle, seed,
                                                        drop_last)
    order = batch_order(len(x), shuffle, seed, epoch)
    return _iterate(x, y, order, batch_size, drop_last)


class Batches:
    """Mini-batches of (x, y), epoch after epoch, each epoch in its own (seed, epoch) order.

    ``for xb, yb in loader.epoch(e)`` walks epoch ``e``; iterating the object itself walks
    epoch 0, then 1, and so on (like a reshuffling data loader). ``len(loader)`` is the number
    of batches per epoch.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        (self.x, self.y, self.batch_size, self.shuffle, self.seed,
         self.drop_last) = _check(x, y, batch_size, shuffle, seed, drop_last)
        self.next_epoch = 0  # the epoch the next ``iter(self)`` walks

    def __len__(self) -> int:
        return _num_batches(len(self.x), self.batch_size, self.drop_last)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch ``epoch`` (an integer >= 0); does not move ``next_epoch``."""
        order = batch_order(len(self.x), self.shuffle, self.seed, epoch)
        return _iterate(self.x, self.y, order, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        batches_of_epoch = self.epoch(self.next_epoch)
        self.next_epoch += 1
        return batches_of_epoch
