"""MATLAB ground-truth files (.mat v4-v7) read with scipy, errors naming the file."""

import os

import numpy as np

from data_pipeline.errors import UserError


def load_variable(path: str, key: str) -> np.ndarray:
  """Returns variable `key` of a .mat file (cells come back as object arrays)."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: ground-truth .mat file not found.")
  # scipy is only needed by sources with .mat ground truth; keep imports light.
  import scipy.io  # pylint: disable=g-import-not-at-top

  try:
    contents = scipy.io.loadmat(path, variable_names=[key])
  except NotImplementedError:
    raise UserError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it with save(..., '-v7').") from None
  except Exception as e:  # scipy raises many types for damaged files
    raise UserError(f"{path}: not a readable .mat file ({e}).") from None
  if key not in contents:
    raise UserError(f"{path}: no variable {key!r} in this .mat file.")
  return contents[key]


def cells(value: np.ndarray) -> list[np.ndarray]:
  """The elements of a MATLAB cell array (1 x n, n x 1 or n) in order."""
  if value.dtype != object:
    raise TypeError("not a cell array")
  return [np.asarray(v) for v in value.reshape(-1)]
