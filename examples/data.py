"""Datasets for the examples, read without network access.

* Fashion-MNIST (Xiao et al. 2017) from idx gzip files, e.g. as installed by
  Debian's ``dataset-fashion-mnist`` under ``/usr/share/datasets/fashion-mnist``.
* Fallback: scikit-learn's bundled handwritten digits (1797 images, 8×8),
  upsampled to 16×16 and split 75/25 with a fixed seed.

Images come back as float32 ``[N, H, W, 1]`` standardised with the training
set's mean and std; labels as int32 ``[N]``.
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple

import numpy as np

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = {
  "train_images": "train-images-idx3-ubyte.gz",
  "train_labels": "train-labels-idx1-ubyte.gz",
  "test_images": "t10k-images-idx3-ubyte.gz",
  "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)


class Dataset(NamedTuple):
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: tuple[str, ...]

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def read_idx(path: str) -> np.ndarray:
  """Reads an idx file (gzip or plain): big-endian magic (0, 0, dtype code, ndim), dims, data."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
    raise ValueError(f"{path} is not an unsigned-byte idx file (magic {raw[:4]!r}).")
  ndim = raw[3]
  dims = np.frombuffer(raw, ">i4", count=ndim, offset=4)
  data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
  return data.reshape(tuple(int(d) for d in dims))


def has_fashion_mnist(data_dir: str) -> bool:
  return all(os.path.exists(os.path.join(data_dir, f)) for f in FASHION_FILES.values())


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  mean, std = x_train.mean(), x_train.std()
  return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def load_fashion_mnist(data_dir: str = DEFAULT_DATA_DIR) -> Dataset:
  arrays = {k: read_idx(os.path.join(data_dir, f)) for k, f in FASHION_FILES.items()}
  x_train = arrays["train_images"].astype(np.float32)[..., None] / 255.0
  x_test = arrays["test_images"].astype(np.float32)[..., None] / 255.0
  x_train, x_test = _standardise(x_train, x_test)
  return Dataset(
    "fashion_mnist",
    x_train,
    arrays["train_labels"].astype(np.int32),
    x_test,
    arrays["test_labels"].astype(np.int32),
    FASHION_CLASSES,
  )


def load_digits(size: int = 16) -> Dataset:
  """scikit-learn's 8×8 digits, upsampled (nearest) to `size`×`size` (a multiple of 8)."""
  from sklearn.datasets import load_digits as sk_digits
  from sklearn.model_selection import train_test_split

  if size % 8:
    raise ValueError(f"size must be a multiple of 8, got {size}.")
  digits = sk_digits()
  x = digits.images.astype(np.float32) / 16.0
  x = np.kron(x, np.ones((size // 8, size // 8), np.float32))[..., None]
  y = digits.target.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
  x_train, x_test = _standardise(x_train, x_test)
  return Dataset("digits", x_train, y_train, x_test, y_test, tuple(str(i) for i in range(10)))


def load(dataset: str = "auto", data_dir: str = DEFAULT_DATA_DIR) -> Dataset:
  """``"fashion_mnist"``, ``"digits"``, or ``"auto"``: Fashion-MNIST when its files exist, else digits."""
  if dataset == "auto":
    dataset = "fashion_mnist" if has_fashion_mnist(data_dir) else "digits"
  if dataset == "fashion_mnist":
    if not has_fashion_mnist(data_dir):
      raise FileNotFoundError(
        f"Fashion-MNIST not found in {data_dir!r} (expected {sorted(FASHION_FILES.values())}); "
        "install Debian's dataset-fashion-mnist or pass --data-dir."
      )
    return load_fashion_mnist(data_dir)
  if dataset == "digits":
    return load_digits()
  raise ValueError(f"dataset must be 'auto', 'fashion_mnist' or 'digits', got {dataset!r}.")
