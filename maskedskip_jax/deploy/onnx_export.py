"""The bundle's ONNX graphs: the eval-mode forward for onnxruntime, which needs neither jax nor the model code.

Two graphs, the two halves `eval/streaming.py` runs, so that a video is scored with each frame encoded once:

  encode.onnx  frames (B, H, W, C) float32 in [0, 1] -> feat1..feat4, each (B, h_i, w_i, c_i)
  decode.onnx  target (B, H, W, C), the clips' centre frames in [0, 1], and feat1..feat4 of each clip's T frames,
               each (B, T, h_i, w_i, c_i) -> recon (B, H, W, C), score_map (B, H, W), score (B,)

The score map and the patch-max frame score (`nn/scoring.py`) are part of the decode graph, so the runtime adds no
maths of its own. B is fixed (the bundle's example batch) and the weights are constants of the graphs. Before they
are written, both graphs run in onnxruntime on random clips and must match the jax forward within TOLERANCE; that
failing, or a primitive jax2onnx cannot convert, is a one-line `OnnxExportError`.
"""

from collections.abc import Callable, Sequence
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import streaming
from maskedskip_jax.nn import scoring

ENCODE_FILE = "encode.onnx"
DECODE_FILE = "decode.onnx"
# 18, not 17: jax2onnx 0.17 writes ReduceMean's axes as an input (valid from 18). ONNX IR 10: onnxruntime >= 1.20.
# Pinned, so that the bytes do not change with jax2onnx's default.
OPSET = 18
PATCH = 16  # the frame-score patch, as `StreamingScorer` uses it
TOLERANCE = 1e-4  # max abs difference from the jax forward, float32
LEVELS = 4
INSTALL_HINT = "pip install 'maskedskip_jax[onnx]'"


class OnnxExportError(UserError):
  """The forward could not be converted, or the converted graph does not match; export without ONNX instead."""


def available() -> bool:
  """Whether jax2onnx and onnxruntime are installed (checked without importing them)."""
  return all(importlib.util.find_spec(name) is not None for name in ("jax2onnx", "onnxruntime"))


def _text(error: BaseException) -> str:
  return " ".join(str(error).split())[:300] or type(error).__name__


def _failed_primitive(error: BaseException) -> str | None:
  """The jax primitive being lowered when jax2onnx raised: its plugins fail with their own messages, which do not
  always name it, but the equation is a local of the frames that lower it."""
  tb = error.__traceback__
  found = None
  while tb is not None:  # outermost frame first, so the equation nearest the failure wins
    eqn = tb.tb_frame.f_locals.get("eqn")
    name = getattr(getattr(eqn, "primitive", None), "name", None)
    found = name if isinstance(name, str) else found
    tb = tb.tb_next
  return found


def convert(fn: Callable, inputs: dict[str, tuple[int, ...]], outputs: Sequence[str], name: str) -> bytes:
  """fn(*float32 arrays of the `inputs` shapes) -> `outputs`, as a serialized ONNX model named `name`."""
  if not available():
    raise OnnxExportError(f"ONNX export needs jax2onnx and onnxruntime: {INSTALL_HINT}")
  import jax2onnx  # pylint: disable=g-import-not-at-top

  specs = [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in inputs.values()]
  try:
    # float32 means float32 maths while tracing too: no TF32 shortcut.
    with jax.default_matmul_precision("highest"):
      model = jax2onnx.to_onnx(
        fn, specs, model_name=name, opset=OPSET, input_names=list(inputs), output_names=list(outputs)
      )
  except Exception as e:  # pylint: disable=broad-except
    primitive = _failed_primitive(e)
    what = f"jax primitive '{primitive}'" if primitive else "the forward"
    raise OnnxExportError(f"ONNX export of {name}: jax2onnx cannot convert {what} ({_text(e)})") from None
  return model.SerializeToString()


def check(blob: bytes, name: str, cases: Sequence[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> float:
  """Runs the graph in onnxruntime (CPU) on each case's inputs; OnnxExportError unless every output is within
  TOLERANCE of the case's expected outputs (by name). Returns the largest difference."""
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top

  worst, session = 0.0, None
  for inputs, want in cases:
    try:
      session = session or ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
      got = session.run(list(want), inputs)
    except Exception as e:  # pylint: disable=broad-except
      raise OnnxExportError(f"ONNX export of {name}: onnxruntime cannot run the converted graph ({_text(e)})") from None
    for (key, expected), value in zip(want.items(), got):
      if value.shape != expected.shape:
        raise OnnxExportError(f"ONNX export of {name}: output {key} is {value.shape}, jax gives {expected.shape}")
      diff = float(np.max(np.abs(value.astype(np.float64) - expected))) if value.size else 0.0
      if not diff <= TOLERANCE:  # also true for NaN
        raise OnnxExportError(f"ONNX export of {name}: output {key} differs from jax by {diff:.3g} > {TOLERANCE:g}")
      worst = max(worst, diff)
  return worst


def _halves(model, variables):
  """(encode, decode) as functions of arrays only: the weights are closed over, so they become constants."""

  def encode(frames):
    # The barrier keeps each level a graph output of its own: jax2onnx 0.17 folds the layout transposes of a
    # feature map that is both a graph output and the next layer's input, leaving the output in NCHW.
    return jax.lax.optimization_barrier(streaming.encode(model, variables, frames))

  def decode(target, *windows):
    recon = streaming.decode_centre(model, variables, windows)
    maps = scoring.score_maps(target, recon)
    return recon, maps, scoring.frame_scores(maps, PATCH)

  return encode, decode


def export(model, variables, example_shape: Sequence[int], seed: int = 0) -> tuple[dict[str, bytes], dict]:
  """({file name: bytes}, model.json's 'onnx' entry) for `model` with `variables`, batch example_shape[0].

  The graphs are traced from the model with XLA's plain convolutions (`conv_lowering='xla'`, which jax2onnx maps
  to ONNX Conv) and checked against `model` as given, the forward that `predict --backend jax` runs.
  """
  if example_shape is None:
    raise OnnxExportError("ONNX export needs the example input shape (B, T, H, W, C) to fix its batch")
  b, t, h, w, c = (int(d) for d in example_shape)
  variables = jax.tree.map(jnp.asarray, variables)
  encode, decode = _halves(model.clone(conv_lowering="xla"), variables)
  ref_encode, ref_decode = (jax.jit(f) for f in _halves(model, variables))
  feats = jax.eval_shape(encode, jax.ShapeDtypeStruct((b, h, w, c), jnp.float32))
  feat_names = [f"feat{i}" for i in range(1, LEVELS + 1)]
  encode_inputs = {"frames": (b, h, w, c)}
  decode_inputs = {"target": (b, h, w, c), **{k: (b, t, *f.shape[1:]) for k, f in zip(feat_names, feats)}}
  outputs = ("recon", "score_map", "score")
  files = {
    ENCODE_FILE: convert(encode, encode_inputs, feat_names, "encode"),
    DECODE_FILE: convert(decode, decode_inputs, outputs, "decode"),
  }

  clips = np.random.default_rng(seed).uniform(0, 1, (t, b, h, w, c)).astype(np.float32)
  with jax.default_matmul_precision("highest"):
    per_frame = [[np.asarray(a) for a in ref_encode(x)] for x in clips]
    windows = {k: np.stack([f[i] for f in per_frame], axis=1) for i, k in enumerate(feat_names)}
    target = clips[(t - 1) // 2]
    want = dict(zip(outputs, (np.asarray(a) for a in ref_decode(target, *windows.values()))))
  check(files[ENCODE_FILE], "encode", [({"frames": x}, dict(zip(feat_names, f))) for x, f in zip(clips, per_frame)])
  check(files[DECODE_FILE], "decode", [({"target": target, **windows}, want)])
  entry = {
    "encode": {"file": ENCODE_FILE, "inputs": _shapes(encode_inputs), "outputs": feat_names},
    "decode": {"file": DECODE_FILE, "inputs": _shapes(decode_inputs), "outputs": list(outputs)},
    "batch": b,
    "dtype": "float32",
    "opset": OPSET,
    "patch": PATCH,
    "tolerance": TOLERANCE,
  }
  return files, entry


def _shapes(inputs: dict[str, tuple[int, ...]]) -> dict[str, list[int]]:
  return {k: list(v) for k, v in inputs.items()}
