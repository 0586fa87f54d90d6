"""A few train steps of a tiny model on a mesh of every visible device.

Run in-process (1 CPU device) or as a script under
XLA_FLAGS=--xla_force_host_platform_device_count=4, which writes the losses and
final parameters to an .npz file for the test to compare.
"""

import functools
import sys

import jax
import numpy as np
import optax

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import models
from maskedskip_jax.train import sharding
from maskedskip_jax.train import state as train_state
from maskedskip_jax.train import step as step_lib

BATCH, STEPS = 8, 4


def batches(seed: int = 0):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:32, 0:32] / 32.0
  for _ in range(STEPS):
    base = rng.uniform(0.2, 0.6, (BATCH, 1, 1, 1, 1)) + 0.3 * xx[None, None, :, :, None] * yy[None, None, :, :, None]
    yield {"clips": np.clip(base + 0.05 * rng.standard_normal((BATCH, 1, 32, 32, 1)), 0, 1).astype(np.float32)}


def run() -> dict[str, np.ndarray]:
  mesh = sharding.make_mesh()
  repl, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  model = models.build("autoencoder", latent_dim=16, channels=1, temporal=1)
  # Plain SGD: Adam turns the pure rounding noise in the gradients of biases that
  # feed a BatchNorm (~1e-10) into full +-lr steps, so Adam trajectories of two
  # reduction orders part ways however correct both are.
  tx = optax.sgd(0.5)
  init = functools.partial(train_state.init_state, model=model, tx=tx, input_shape=(1, 1, 32, 32, 1), placement=repl)
  step = jax.jit(
    functools.partial(step_lib.train_step, model=model, tx=tx),
    donate_argnums=0,
    in_shardings=(repl, data),
    out_shardings=(repl, repl),
  )
  state, losses, out = init(0), [], {}
  before = {part: jax.tree.map(np.asarray, state[part]) for part in ("params", "batch_stats")}
  for batch in sharding.prefetch(batches(), data, size=2):
    assert batch["clips"].sharding == data and len(batch["clips"].addressable_shards) == mesh.devices.size
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
    if len(losses) == 1:
      for part in ("params", "batch_stats"):
        # The first step's change to each leaf: what the step computed, without the initial values.
        change = jax.tree.map(lambda new, old: np.asarray(new) - old, state[part], before[part])
        out.update({part + jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(change)})
  out["losses"] = np.asarray(losses)
  out["devices"] = np.asarray(jax.device_count())
  if jax.device_count() == 4:
    try:
      sharding.local_batch_size(6, mesh)
    except UserError as e:
      out["uneven_batch_error"] = np.asarray(str(e))
  return out


if __name__ == "__main__":
  np.savez(sys.argv[1], **run())
