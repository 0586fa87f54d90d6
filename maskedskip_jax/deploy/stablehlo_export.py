"""The bundle's `inference.stablehlo`: eval-mode reconstruction serialized with jax.export.

The function takes (variables, clips) rather than closing over the weights, so the
weights stay in `params.msgpack` (not duplicated as constants in the program) and
the file is small. Running it needs jax and the two files, not the model code.
Lowered for CPU, CUDA and TPU so a bundle exported on one runs on the others.
"""

from collections.abc import Callable, Sequence

import jax
from jax import export as jax_export
import numpy as np

from maskedskip_jax.errors import UserError

PLATFORMS = ("cpu", "cuda", "tpu")


def serialize(apply_fn: Callable, variables, input_shape: Sequence[int], platforms: Sequence[str] = PLATFORMS) -> bytes:
  """apply_fn(variables, clips) -> recon, exported for float32 clips of `input_shape`."""
  var_specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), variables)
  clip_spec = jax.ShapeDtypeStruct(tuple(input_shape), np.float32)
  # float32 inference means float32 maths: no TF32 shortcut on GPUs.
  with jax.default_matmul_precision("highest"):
    exported = jax_export.export(jax.jit(apply_fn), platforms=tuple(platforms))(var_specs, clip_spec)
  return bytes(exported.serialize())


class ExportedModel:
  """Runs a deserialized inference function: model(clips (B,T,H,W,C) float32) -> recon (B,H,W,C)."""

  def __init__(self, blob: bytes, variables, name: str = "inference.stablehlo"):
    try:
      self._exported = jax_export.deserialize(bytearray(blob))
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"{name}: not a jax.export serialization this jax can read ({type(e).__name__})") from None
    self._variables = variables
    self._call = jax.jit(self._exported.call)
    self.input_shape = tuple(self._exported.in_avals[-1].shape)
    self.name = name

  def __call__(self, clips) -> jax.Array:
    if tuple(np.shape(clips)) != self.input_shape:
      raise UserError(f"{self.name}: exported for input shape {self.input_shape}, got {tuple(np.shape(clips))}")
    return self._call(self._variables, np.asarray(clips, np.float32))
