"""AED-MAE network: shapes, input checks, masking, stage-2 freezing and the stage-1 loss on its outputs."""

import jax
import jax.numpy as jnp
from model_helpers import jit_apply
import numpy as np
import optax
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import aed_mae
from maskedskip_jax.nn import aed_mae_losses as L

B, HW, PATCH, C_IN = 2, 32, 4, 9  # 8 x 8 tokens of 4 x 4; three stacked RGB frames
# Behaviour tests run a narrow, shallow model: the paper's widths and depths change no code path, and a CPU spends
# its time compiling one kernel per op and shape. The paper's configuration is checked without running it.
SMALL = dict(patch=PATCH, embed_dim=16, decoder_dim=16, depth=1, decoder_depth=2)


def _rngs(masking=1, dropout=2):
  return {"masking": jax.random.key(masking), "dropout": jax.random.key(dropout)}


@pytest.fixture(scope="module")
def model():
  return aed_mae.AedMae(**SMALL)


@pytest.fixture(scope="module")
def variables(model):
  return aed_mae.init_variables(model, 0, (B, HW, HW, C_IN))


@pytest.fixture(scope="module")
def frames():
  return jax.random.uniform(jax.random.key(3), (B, HW, HW, C_IN))


def _train(model, variables, x, rngs, **kw):
  return jit_apply(model, variables, x, rngs=rngs, train=True, mutable=["batch_stats"], **kw)


def _check_shapes(out):
  assert out["teacher"].shape == out["student"].shape == (B, HW, HW, 4)
  assert out["logit"].shape == (B,) and out["mask"].shape == (B, HW // PATCH, HW // PATCH)
  assert all(out[k].dtype == jnp.float32 for k in ("teacher", "student", "logit"))


def test_output_shapes_train_and_inference(model, variables, frames):
  _check_shapes(jit_apply(model, variables, frames))
  _check_shapes(_train(model, variables, frames, _rngs())[0])
  paper = aed_mae.AedMae(patch=PATCH)
  _check_shapes(jax.eval_shape(paper.apply, aed_mae.variable_shapes(paper, frames.shape), frames))


def test_bfloat16_compute_keeps_float32_params_and_outputs(frames):
  model = aed_mae.AedMae(patch=PATCH, dtype=jnp.bfloat16)
  variables = aed_mae.variable_shapes(model, frames.shape)
  assert {p.dtype for p in jax.tree_util.tree_leaves(variables["params"])} == {jnp.dtype(jnp.float32)}
  out = jax.eval_shape(model.apply, variables, frames)  # traced, not compiled: dtypes are what is checked
  assert {out[k].dtype for k in ("teacher", "student", "logit")} == {jnp.dtype(jnp.float32)}


def test_bad_inputs_are_user_errors(model, variables):
  with pytest.raises(UserError, match="multiples of the patch"):
    model.apply(variables, jnp.zeros((1, 30, 32, C_IN)))
  with pytest.raises(UserError, match="mask_ratio"):
    aed_mae.variable_shapes(aed_mae.AedMae(patch=PATCH, mask_ratio=1.0), (1, HW, HW, C_IN))


def test_masking_drops_the_configured_fraction_per_frame(model, variables, frames):
  n = (HW // PATCH) ** 2
  for ratio in (0.5, 0.75):
    m = aed_mae.AedMae(**SMALL, mask_ratio=ratio)
    out, _ = _train(m, variables, frames, _rngs())
    assert out["mask"].reshape(B, n).sum(axis=1).tolist() == [int(n * ratio)] * B


def test_masks_differ_between_keys_and_frames_and_repeat_for_one_key(model, variables, frames):
  a, _ = _train(model, variables, frames, _rngs(masking=1))
  b, _ = _train(model, variables, frames, _rngs(masking=2))
  c, _ = _train(model, variables, frames, _rngs(masking=1))
  assert not np.array_equal(a["mask"], b["mask"])
  assert not np.array_equal(a["mask"][0], a["mask"][1])
  np.testing.assert_array_equal(a["mask"], c["mask"])


def test_inference_masks_nothing_and_needs_no_rng_unless_asked(model, variables, frames):
  out = jit_apply(model, variables, frames)
  assert not np.asarray(out["mask"]).any()
  again = jit_apply(model, variables, frames)
  np.testing.assert_array_equal(out["teacher"], again["teacher"])
  masked = jit_apply(model, variables, frames, mask=True, rngs={"masking": jax.random.key(5)})  # the authors' test-time
  assert np.asarray(masked["mask"]).mean() == 0.5
  again = jit_apply(model, variables, frames, mask=True, rngs={"masking": jax.random.key(5)})
  np.testing.assert_array_equal(masked["teacher"], again["teacher"])


def test_dropped_tokens_never_reach_the_network(model, variables, frames):
  out, _ = _train(model, variables, frames, _rngs())
  dropped = np.repeat(np.repeat(np.asarray(out["mask"]), PATCH, axis=1), PATCH, axis=2)
  noisy = jnp.where(dropped[..., None], 1.0 - frames, frames)  # change only the pixels of dropped tokens
  out2, _ = _train(model, variables, noisy, _rngs())
  for k in ("teacher", "student", "logit"):
    np.testing.assert_array_equal(out[k], out2[k])


def test_keep_names_the_kept_tokens_outright(model, variables, frames):
  masked = jit_apply(model, variables, frames, mask=True, rngs={"masking": jax.random.key(5)})
  n = (HW // PATCH) ** 2
  keep = np.argsort(np.asarray(masked["mask"]).reshape(B, n), axis=1, kind="stable")[:, : n // 2]
  given = jax.jit(lambda v, x, k: model.apply(v, x, keep=k))(variables, frames, jnp.asarray(keep))
  for k in ("teacher", "student", "logit", "mask"):
    np.testing.assert_array_equal(given[k], masked[k])
  with pytest.raises(UserError, match=r"aed_mae keep: expected a \(batch, K\) array"):
    model.apply(variables, frames, keep=jnp.zeros((B, n + 1), jnp.int32))
  with pytest.raises(UserError, match="either mask=True .* or keep"):
    model.apply(variables, frames, mask=True, keep=jnp.asarray(keep), rngs={"masking": jax.random.key(5)})


def test_stage2_step_moves_only_the_student(model, variables, frames):
  params, stats = variables["params"], variables["batch_stats"]
  tx = aed_mae.stage2_transform(optax.adamw(1e-3, weight_decay=0.05))
  opt_state = tx.init(params)
  target, previous = frames[..., 3:6], frames[..., :3]
  anomaly = jnp.zeros((B, HW, HW)).at[0, :8, :8].set(1.0)

  def loss_fn(p, x, target, previous, anomaly):  # data as arguments: as constants XLA would fold the median sort
    out, new = _train(model, {"params": p, "batch_stats": stats}, x, _rngs(), freeze_backbone=True)
    return L.stage2_loss(out, target, previous, anomaly, PATCH)[0], new["batch_stats"]

  step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (loss, new_stats), grads = step(params, frames, target, previous, anomaly)
  assert loss > 0
  updates, _ = tx.update(grads, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  for name in params:
    moved = [
      not np.array_equal(a, b)
      for a, b in zip(jax.tree_util.tree_leaves(params[name]), jax.tree_util.tree_leaves(new_params[name]))
    ]
    if aed_mae.label_of(name) == "student":
      assert any(moved), name
    else:
      assert not any(moved), name
  for name in stats:  # the frozen parts run on their running averages, which therefore stay put
    same = all(
      np.array_equal(a, b)
      for a, b in zip(jax.tree_util.tree_leaves(stats[name]), jax.tree_util.tree_leaves(new_stats[name]))
    )
    assert same == (aed_mae.label_of(name) != "student"), name


def test_stage1_loss_is_eq3_plus_eq5_with_labels_from_the_maps(model, variables, frames):
  out = jit_apply(model, variables, frames)
  target, previous = frames[..., 3:6], frames[..., :3]
  anomaly = jnp.zeros((B, HW, HW)).at[1, 4:9, 4:9].set(1.0)
  total, parts = L.stage1_loss(out, target, previous, anomaly, PATCH)
  w = L.motion_weights(target, previous, PATCH, anomaly)
  np.testing.assert_allclose(
    parts["reconstruction"], L.reconstruction_loss(L.with_map(target, anomaly), out["teacher"], w, PATCH), rtol=1e-6
  )
  np.testing.assert_allclose(
    parts["classification"], L.classification_loss(out["logit"], jnp.asarray([0.0, 1.0])), rtol=1e-6
  )
  np.testing.assert_allclose(total, parts["reconstruction"] + parts["classification"], rtol=1e-6)
