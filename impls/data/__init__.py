"""Datasets and mini-batches for every backend, in NumPy only (no framework imported here).

    (x_train, y_train), (x_test, y_test) = impls.data.load_dataset("fashion-mnist")
    input_shape, num_classes = impls.data.dataset_info("cifar10")
    for xb, yb in impls.data.batches(x_train, y_train, 64, seed=0, epoch=e): ...

Images are float32 (N, C, H, W) scaled to [0, 1], labels int64 (N,). Datasets (DATASETS):

- ``digits``: scikit-learn's bundled 8x8 digits, a fixed stratified 1347/450 split; needs only
  scikit-learn, so it is the default everywhere.
- ``mnist``, ``fashion-mnist``: the four IDX files, gzipped or not. fashion-mnist defaults to
  /usr/share/datasets/fashion-mnist (Debian's ``apt-get install dataset-fashion-mnist``);
  mnist needs ``data_dir``.
- ``cifar10``: the python batches (cifar-10-batches-py), unpickled with an allow-list.
- ``signs``: deeplearning.ai's train_signs.h5 / test_signs.h5 (needs h5py).
- ``synthetic``: generated, learnable, any shape (benchmarks).

Nothing is ever downloaded. Every file is checked (magic numbers, sizes, dtypes, label ranges,
matching counts) and a bad one raises ValueError naming the file, what it held and what was
expected; a missing one raises FileNotFoundError saying how to get it.
"""

from __future__ import annotations

from .batching import Batches, batch_order, batches
from .loaders import DATASETS, DatasetInfo, class_names, dataset_info, load_dataset

__all__ = ["DATASETS", "Batches", "DatasetInfo", "batch_order", "batches", "class_names",
           "dataset_info", "load_dataset"]
