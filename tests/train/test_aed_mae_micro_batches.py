"""train.micro_batches (AED-MAE): a batch taken in parts gives the update of the parts' averaged gradients, each
part seeing the statistics the earlier ones left and keys folded with its index; bad settings are one line."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny_run

from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.train import aed_mae_step
from maskedskip_jax.train import state as train_state


def _config(root, **kw):
  return tiny_run.config(root, **{**tiny_run.AED_MAE, "train__batch_size": 4, "train__paste_prob": 0.0, **kw})


@pytest.mark.parametrize("stage", [1, 2])
def test_parts_gradients_are_averaged_in_order(tiny_dataset, stage):
  config = _config(tiny_dataset, train__micro_batches=2)
  model = train_state.build_model(config)
  # Plain SGD at rate 1: the update is minus the gradient itself (Adam's first step would turn rounding-level
  # differences of near-zero gradients into whole learning-rate steps).
  tx = optax.sgd(1.0)
  state = train_state.init_state(0, model=model, tx=tx, input_shape=train_state.clip_shape(config))
  clips = np.random.default_rng(stage).uniform(size=(4, 3, 32, 32, 1)).astype(np.float32)
  options = aed_mae_step.stage_options(config.model.aed_mae, stage, config.train.micro_batches)
  got, metrics = jax.jit(lambda s, b: aed_mae_step.train_step(s, b, model=model, tx=tx, options=options))(
    state, {"clips": clips}
  )

  # The same by hand: two halves one after the other, keys folded with 0 and 1, gradients averaged.
  _, masking, dropout = jax.random.split(state["rng"], 3)
  grad = jax.jit(lambda p, st, inp, keys: aed_mae_step.gradients(p, st, inp, keys, model=model, options=options))
  stats, totals, grads = state["batch_stats"], [], []
  for i, part in enumerate((clips[:2], clips[2:])):
    part = jnp.asarray(part)
    inputs = {
      "x": aed_mae_step.stacked(part, 1),
      "frame": part[:, 1],
      "previous": part[:, 0],
      "anomaly_map": jnp.zeros((2, 32, 32), jnp.float32),
    }
    keys = {"masking": jax.random.fold_in(masking, i), "dropout": jax.random.fold_in(dropout, i)}
    (total, (stats, _)), g = grad(state["params"], stats, inputs, keys)
    totals.append(float(total))
    grads.append(g)
  want = jax.tree.map(lambda p, a, b: p - (a + b) / 2, state["params"], *grads)

  np.testing.assert_allclose(float(metrics["loss"]), np.mean(totals), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(got["params"]), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(got["batch_stats"]), jax.tree.leaves(stats)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
  pairs = zip(jax.tree.leaves(got["params"]), jax.tree.leaves(state["params"]))
  assert any(not np.allclose(a, b) for a, b in pairs)


@pytest.mark.parametrize(
  "overrides, match",
  [
    (dict(train__micro_batches=3), r"train\.micro_batches: expected a divisor of train\.batch_size=4, got 3"),
    (dict(model__variant="maskedskip_unet", train__micro_batches=2), r"train\.micro_batches: only aed_mae"),
  ],
)
def test_bad_micro_batches_are_one_line_errors(tiny_dataset, overrides, match):
  with pytest.raises(UserError, match=match):
    validation.validate(_config(tiny_dataset, **overrides))
