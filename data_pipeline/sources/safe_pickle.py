"""Loading numpy arrays from pickle files without running arbitrary code.

Some published copies of benchmark labels are numpy pickles (even when named
.json). A pickle can call any importable function, so this unpickler resolves
only the names numpy needs to rebuild an ndarray and refuses everything else.
"""

import io
import pickle

import numpy as np

from data_pipeline.errors import UserError

_ALLOWED = frozenset(
  {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
  }
)


class _Refused(pickle.UnpicklingError):
  pass


def _reconstruct():
  # numpy 2 moved numpy.core to numpy._core; files name either module.
  try:
    from numpy._core import multiarray  # pylint: disable=g-import-not-at-top
  except ImportError:
    from numpy.core import multiarray  # pylint: disable=g-import-not-at-top
  return multiarray._reconstruct  # pylint: disable=protected-access


class _NumpyOnlyUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) not in _ALLOWED:
      raise _Refused(f"{module}.{name}")
    if name == "_reconstruct":
      return _reconstruct()
    return getattr(np, name)

  def persistent_load(self, pid):
    raise _Refused("a persistent id")


def load(path: str):
  """Unpickles `path` admitting only numpy arrays (in lists/tuples/dicts)."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UserError(f"{path}: cannot read ({e.strerror}).") from None
  try:
    # latin1 lets numpy arrays pickled by Python 2 load their raw bytes.
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
  except _Refused as e:
    raise UserError(f"{path}: refused to unpickle: it calls {e}; only numpy arrays are allowed.") from None
  except Exception as e:  # damaged pickles raise many types
    raise UserError(f"{path}: not a readable numpy pickle ({e}).") from None
