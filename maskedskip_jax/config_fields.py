"""The value rules of config keys: a key's `Field` (default, check, doc) and the checks that its values must pass.

A check takes a value and returns None when it is fine, else what was expected (the error message's end), so
`validation.validate` can name the key and the expectation in one line.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines
from maskedskip_jax.eval import postprocess


@dataclasses.dataclass(frozen=True)
class Field:
  default: Any  # its type is the key's type; a tuple is (height, width)
  check: Callable[[Any], str | None] | None = None  # returns what was expected when the value is bad
  doc: str = ""


def one_of(*options):
  return lambda v: None if v in options else f"one of {', '.join(map(repr, options))}"


def at_least(lo):
  return lambda v: None if v >= lo else f"a number >= {lo}"


positive = lambda v: None if v > 0 else "a number > 0"
fraction = lambda v: None if 0 <= v <= 1 else "a fraction in [0, 1]"
below_one = lambda v: None if 0 <= v < 1 else "a fraction in [0, 1)"
odd_positive = lambda v: None if v >= 1 and v % 2 == 1 else "an odd integer >= 1"
open_fraction = lambda v: None if 0 < v < 1 else "a fraction strictly between 0 and 1"
crop = lambda v: None if 0 < v <= 1 else "a fraction in (0, 1]"
odd = lambda v: None if v >= 1 and v % 2 == 1 else "a positive odd number (the target is the centre frame)"
multiple_of_8 = lambda v: None if v >= 8 and v % 8 == 0 else "a positive multiple of 8"


def image_size(v):
  # Multiples of 8 for the CAE's three downsamplings; validation asks the other families for 16.
  if len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 and s % 8 == 0 for s in v):
    return None
  return "(height, width), both multiples of 16 (the U-Net downsamples 4 times by 2; 8 for the 'cae' variant)"


def postprocess_chain(v):
  try:
    postprocess.parse_chain(v)
  except UserError as e:
    return f"a post-processing chain such as 'median' or 'gaussian:sigma=3+zscore' ({e})"
  return None


def baseline_names(v):
  if all(n.strip() in baselines.BASELINES for n in v.split(",") if n.strip()):
    return None
  return f"comma-separated names from {', '.join(baselines.BASELINES)} ('' for none)"
