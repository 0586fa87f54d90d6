"""Temporal post-processing of frame scores, one video at a time (SPEC §2).

Methods, each named in the evaluation report:
  none      scores unchanged.
  median    centred running median over `window` frames (default 17, the paper's); the window must be odd so it
            is centred. Edges repeat the first/last score ('nearest' padding), so a video shorter than the window
            still gets a centred median.
  gaussian  centred 1-D Gaussian with standard deviation `sigma` frames (default 3) and `taps` weights (default
            int(4 * sigma) * 2 + 1, odd), normalised to sum 1. Edges are mirrored including the edge sample
            (numpy 'symmetric', scipy.ndimage's 'reflect': d c b a | a b c d), so an impulse stays where it was.
  minmax    (s - min) / (max - min) per video; a constant video becomes zeros.
  zscore    (s - mean) / std per video; a constant video becomes zeros.

Methods chain left to right: 'median+minmax', 'gaussian:sigma=2+zscore', or a list of names / (name, kwargs).
Every method returns float64 arrays of the input lengths; videos never influence each other.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from maskedskip_jax.errors import UserError

METHODS = ("none", "median", "gaussian", "minmax", "zscore")
_DEFAULTS = {"none": {}, "median": {"window": 17}, "gaussian": {"sigma": 3.0, "taps": None}, "minmax": {}, "zscore": {}}


def _median(s: np.ndarray, window: int) -> np.ndarray:
  half = window // 2
  padded = np.pad(s, half, mode="edge")
  return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=-1)


def gaussian_taps(sigma: float, taps: int | None = None) -> np.ndarray:
  """Normalised, symmetric Gaussian weights; `taps` odd, default int(4 * sigma) * 2 + 1."""
  if taps is None:
    taps = int(4 * sigma) * 2 + 1
  k = np.arange(taps, dtype=np.float64) - taps // 2
  w = np.exp(-0.5 * (k / sigma) ** 2)
  return w / w.sum()


def _gaussian(s: np.ndarray, sigma: float, taps: int | None) -> np.ndarray:
  w = gaussian_taps(sigma, taps)
  half = len(w) // 2
  padded = np.pad(s, half, mode="symmetric")
  # 'valid' on the padded signal gives exactly len(s) outputs, the i-th centred on s[i]; w is symmetric, so
  # convolution and correlation agree.
  return np.convolve(padded, w, mode="valid")


def _minmax(s: np.ndarray) -> np.ndarray:
  span = s.max() - s.min()
  return (s - s.min()) / span if span > 0 else np.zeros_like(s)


def _zscore(s: np.ndarray) -> np.ndarray:
  std = s.std()
  return (s - s.mean()) / std if std > 0 else np.zeros_like(s)


def _check_kwargs(method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
  unknown = sorted(set(kwargs) - set(_DEFAULTS[method]))
  if unknown:
    raise UserError(f"postprocess: method '{method}' takes {sorted(_DEFAULTS[method]) or 'no options'}, got {unknown}")
  kw = {**_DEFAULTS[method], **kwargs}
  if method == "median":
    window = kw["window"]
    if int(window) != window or window < 1 or window % 2 == 0:
      raise UserError(f"postprocess: median window must be a positive odd integer, got {window}")
    kw["window"] = int(window)
  if method == "gaussian":
    if not kw["sigma"] > 0:
      raise UserError(f"postprocess: gaussian sigma must be > 0, got {kw['sigma']}")
    taps = kw["taps"]
    if taps is not None and (int(taps) != taps or taps < 1 or taps % 2 == 0):
      raise UserError(f"postprocess: gaussian taps must be a positive odd integer, got {taps}")
    kw["sigma"] = float(kw["sigma"])
    kw["taps"] = None if taps is None else int(taps)
  return kw


def _parse_value(text: str) -> int | float:
  try:
    return int(text)
  except ValueError:
    return float(text)


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
  """'gaussian:sigma=3,taps=25' -> ('gaussian', {'sigma': 3, 'taps': 25}); options are validated."""
  name, _, options = spec.strip().partition(":")
  name = name.strip().lower()
  if name not in METHODS:
    raise UserError(
      f"postprocess: unknown method '{name}'; expected one of {', '.join(METHODS)} "
      "(options like 'median:window=17', 'gaussian:sigma=3', chained with '+')"
    )
  kwargs = {}
  for item in filter(None, (o.strip() for o in options.split(","))):
    key, eq, value = item.partition("=")
    try:
      if not eq:
        raise ValueError
      kwargs[key.strip()] = _parse_value(value.strip())
    except ValueError:
      raise UserError(f"postprocess: option '{item}' in '{spec}' must look like key=number") from None
  return name, _check_kwargs(name, kwargs)


def parse_chain(spec: str | Sequence[str | tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
  """A method spec ('median+minmax', or a list of names / (name, kwargs)) -> validated [(method, kwargs), ...]."""
  if isinstance(spec, str):
    return [parse_method(part) for part in spec.split("+")]
  steps = []
  for item in spec:
    if isinstance(item, str):
      steps.extend(parse_chain(item))
    else:
      name, kwargs = item
      method, parsed = parse_method(name)
      steps.append((method, _check_kwargs(method, {**parsed, **dict(kwargs)})))
  return steps


def describe(steps: list[tuple[str, dict[str, Any]]]) -> str:
  """The canonical name of a parsed chain, with every option spelled out, for reports."""
  parts = []
  for method, kw in steps:
    if method == "gaussian" and kw["taps"] is None:
      kw = {**kw, "taps": len(gaussian_taps(kw["sigma"]))}
    opts = ",".join(f"{k}={v}" for k, v in sorted(kw.items()))
    parts.append(f"{method}:{opts}" if opts else method)
  return "+".join(parts)


def _apply(method: str, kw: dict[str, Any], s: np.ndarray) -> np.ndarray:
  if s.size == 0 or method == "none":
    return s
  if method == "median":
    return _median(s, kw["window"])
  if method == "gaussian":
    return _gaussian(s, kw["sigma"], kw["taps"])
  if method == "minmax":
    return _minmax(s)
  return _zscore(s)


def postprocess(scores_by_video: Sequence[np.ndarray], method: Any = "none", **kw) -> list[np.ndarray]:
  """Applies `method` (a name, 'a:opt=v+b' chain, or list) to each video's 1-D scores independently.

  Keyword options go to the chain's steps that take them (e.g. postprocess(s, 'median+minmax', window=9));
  an option no step takes is a UserError.
  """
  steps = parse_chain(method)
  for key, value in kw.items():
    takers = [i for i, (m, _) in enumerate(steps) if key in _DEFAULTS[m]]
    if not takers:
      raise UserError(f"postprocess: option '{key}' is not taken by any step of {describe(steps)}")
    for i in takers:
      m, old = steps[i]
      steps[i] = (m, _check_kwargs(m, {**old, key: value}))
  out = []
  for v, scores in enumerate(scores_by_video):
    s = np.array(scores, dtype=np.float64)  # a copy: the caller's arrays are never aliased
    if s.ndim != 1:
      raise UserError(f"postprocess: video {v} scores must be 1-D, got shape {s.shape}")
    for m, step_kw in steps:
      s = _apply(m, step_kw, s)
    out.append(s)
  return out
