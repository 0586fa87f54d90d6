"""MaskedSkipUNet's variables drawn on the host: the same distributions as `model.init`, without its compile.

`model.init` compiles one threefry draw per parameter into XLA, which takes a minute or more on CPU; shapes come
from `jax.eval_shape` instead (no compile), and the values from a seeded numpy generator.
"""

import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.nn import layers
from maskedskip_jax.nn import models
from maskedskip_jax.nn import ssmctb as ssmctb_lib


def init_variables(model: models.MaskedSkipUNet, seed: int, input_shape) -> dict:
  """Variables of `model` for inputs of `input_shape`, deterministic in `seed`.

  PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv kernels and biases, masked taps zeroed, BatchNorm scale 1 /
  bias 0 / mean 0 / var 1.
  """
  models.check_input_shape(model, input_shape)
  if model.ssmctb.placement != "none":
    # Transformer layers have their own initialisers; such models are opt-in, so they pay the compile.
    x = jnp.zeros(tuple(input_shape), jnp.float32)
    return ssmctb_lib.without_losses(jax.jit(lambda: model.init(jax.random.key(seed), x, train=False))())
  with layers.kernel_masks() as masks:  # each masked conv's own mask, by its path, as init builds it
    shapes = jax.eval_shape(
      lambda key, x: model.init(key, x, train=False),
      jax.random.key(0),
      jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32),
    )
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4D53]))  # 'MS'

  def conv_params(path, leaves):
    kernel_name = "masked_kernel" if "masked_kernel" in leaves else "kernel"
    kshape = leaves[kernel_name].shape
    bound = 1.0 / np.sqrt(np.prod(kshape[:-1]))
    kernel = rng.uniform(-bound, bound, kshape).astype(np.float32)
    if kernel_name == "masked_kernel":
      kernel *= masks[path]
    bias = rng.uniform(-bound, bound, leaves["bias"].shape).astype(np.float32)
    return {kernel_name: kernel, "bias": bias}

  def fill(tree, path, collection):
    if any(k in tree for k in ("kernel", "masked_kernel", "scale", "mean")):
      if collection == "batch_stats":
        return {"mean": np.zeros(tree["mean"].shape, np.float32), "var": np.ones(tree["var"].shape, np.float32)}
      if "scale" in tree:
        return {"scale": np.ones(tree["scale"].shape, np.float32), "bias": np.zeros(tree["bias"].shape, np.float32)}
      return conv_params(path, tree)
    return {k: fill(v, path + (k,), collection) for k, v in sorted(tree.items())}

  out = {name: fill(tree, (), name) for name, tree in sorted(shapes.items())}
  dtypes = jax.tree_util.tree_map(lambda s: s.dtype, shapes)
  return jax.tree_util.tree_map(lambda a, d: jnp.asarray(a, d), out, dtypes)
