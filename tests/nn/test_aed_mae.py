"""AED-MAE: shapes, parameter count, masking, stage-2 freezing, each loss and the score on hand-computed values."""

import math

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


def test_host_init_has_model_inits_tree_and_scales():
  model = aed_mae.AedMae(patch=PATCH)
  shapes = aed_mae.variable_shapes(model, (1, HW, HW, C_IN))
  variables = aed_mae.init_variables(model, 7, (1, HW, HW, C_IN))
  assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(shapes)
  assert jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), variables) == jax.tree_util.tree_map(
    lambda a: (a.shape, a.dtype), shapes
  )
  fc1 = np.asarray(variables["params"]["encoder_0"]["mlp"]["fc1"]["conv"]["kernel"])  # fan-in 256
  np.testing.assert_allclose(fc1.std() * 16, 1.0, atol=0.02)
  assert np.abs(fc1).max() <= 2 / 16 / aed_mae.TRUNCATED_STD
  np.testing.assert_array_equal(
    aed_mae.init_variables(model, 7, (1, HW, HW, C_IN))["params"]["cls_token"], variables["params"]["cls_token"]
  )


def test_bad_inputs_are_user_errors(model, variables):
  with pytest.raises(UserError, match="multiples of the patch"):
    model.apply(variables, jnp.zeros((1, 30, 32, C_IN)))
  with pytest.raises(UserError, match="mask_ratio"):
    aed_mae.variable_shapes(aed_mae.AedMae(patch=PATCH, mask_ratio=1.0), (1, HW, HW, C_IN))


def test_parameter_count_matches_the_paper():
  # Paper (Table 5, Sec. 5): "3M". At its Avenue settings (d = 16, [x_{t-3}, x_t, x_{t+3}] RGB in, RGB + map
  # out) the count is 3,042,560 for the authors' PyTorch module plus 257 for the classification head, which their
  # released code lacks; no positional embedding, so the frame size does not matter. "3M" is rounded to one
  # digit, so 5% is generous for the rounding and tight enough to catch a wrong width, depth or MLP ratio.
  avenue = aed_mae.count_params(aed_mae.variable_shapes(aed_mae.AedMae(patch=16), (1, 320, 640, 9))["params"])
  assert avenue == 3_042_817
  assert abs(avenue - 3e6) / 3e6 < 0.05
  same = aed_mae.count_params(aed_mae.variable_shapes(aed_mae.AedMae(patch=16), (1, 64, 96, 9))["params"])
  assert same == avenue
  # Smaller tokens shrink the embedding and both prediction layers: 4 x 4 tokens (Ped2) have 2.24M.
  ped2 = aed_mae.count_params(aed_mae.variable_shapes(aed_mae.AedMae(patch=4), (1, 80, 160, 9))["params"])
  assert ped2 == 2_242_177


def test_gflops_is_a_compiled_count_covering_at_least_the_embedding_and_heads():
  model = aed_mae.AedMae(patch=PATCH)
  gflops = aed_mae.gflops_per_frame(model, (HW, HW, C_IN))
  n = (HW // PATCH) ** 2
  dense = n * PATCH * PATCH * (C_IN * 256 + 2 * 128 * 4)  # multiply-adds of the embedding and both heads alone
  assert gflops * 1e9 > 2 * dense
  assert gflops < 1.0


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
  with pytest.raises(UserError, match=r"aed_mae keep: expected \(batch, K\)"):
    model.apply(variables, frames, keep=jnp.zeros((B, n + 1), jnp.int32))


def test_backbone_labels():
  params = aed_mae.variable_shapes(aed_mae.AedMae(patch=PATCH), (1, HW, HW, C_IN))["params"]  # the paper's
  labels = aed_mae.backbone_labels(params)
  groups = {name: set(jax.tree_util.tree_leaves(sub)) for name, sub in labels.items()}
  assert all(len(g) == 1 for g in groups.values())
  by_label = {lab: sorted(n for n, g in groups.items() if lab in g) for lab in aed_mae.LABELS}
  assert by_label == {
    "backbone": [
      "cls_head",
      "cls_token",
      "decoder_0",
      "decoder_embed",
      "embed",
      "encoder_0",
      "encoder_1",
      "encoder_2",
      "encoder_norm",
      "mask_token",
    ],
    "teacher_head": ["teacher_1", "teacher_2", "teacher_norm", "teacher_pred"],
    "student": ["student_0", "student_norm", "student_pred"],
  }


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


def _token_frame(values):
  """(1, 8, 8, len(values[0])) frame whose 4 x 4 token i has pixel (0, 0) = values[i] and (1, 1) = values[i] / 2."""
  x = np.zeros((1, 8, 8, len(values[0])), np.float32)
  for i, v in enumerate(values):
    r, c = 4 * (i // 2), 4 * (i % 2)
    x[0, r, c], x[0, r + 1, c + 1] = v, np.asarray(v) / 2
  return jnp.asarray(x)


def test_motion_weights_eq1_eq2_by_hand():
  # Per token (raster order) the max gradient per channel: (0.5, 0.1), (0, 0), (0.2, 0.2), (0, 1.0);
  # channel means 0.3, 0, 0.2, 0.5 sum to 1, so they are the weights.
  frame = _token_frame([(0.5, 0.1), (0.0, 0.0), (0.2, 0.2), (0.0, 1.0)])
  previous = jnp.zeros_like(frame)
  w = L.motion_weights(frame, previous, 4, median=0)
  np.testing.assert_allclose(w, [[0.3, 0.0, 0.2, 0.5]], atol=1e-6)
  np.testing.assert_allclose(L.motion_weights(previous, frame, 4, median=0), w, atol=1e-6)  # |x_t - x_{t-1}|
  # The anomaly map is added on every channel before the per-token max: token 1 gets (1, 1) -> 1; sum 2.
  anomaly = jnp.zeros((1, 8, 8)).at[0, 0, 5].set(1.0)
  np.testing.assert_allclose(
    L.motion_weights(frame, previous, 4, anomaly, median=0), [[0.15, 0.5, 0.1, 0.25]], atol=1e-6
  )


def test_motion_weights_median_filter_and_static_frames():
  previous = jnp.zeros((1, 8, 8, 1))
  frame = previous.at[0, 1, 1].set(1.0).at[0, 4:, 4:].set(0.6)  # a lone flicker and a moving 4 x 4 block
  np.testing.assert_allclose(L.motion_weights(frame, previous, 4), [[0, 0, 0, 1]], atol=1e-6)
  np.testing.assert_allclose(L.motion_weights(frame, previous, 4, median=0)[0, 0], 1.0 / 1.6, atol=1e-6)
  np.testing.assert_allclose(L.motion_weights(previous, previous, 4), [[0.25] * 4])  # uniform, not 0 / 0


def test_reconstruction_loss_eq3_by_hand():
  target = jnp.zeros((2, 8, 8, 2))
  pred = target.at[0, :4, :4, 0].set(0.5).at[0, 6, 6, 1].set(1.0)  # token 0: 16 * 0.25 = 4; token 3: 1
  w = jnp.asarray([[0.3, 0.0, 0.2, 0.5], [0.25] * 4])
  # Frame 0: (1/4)(0.3 * 4 + 0.5 * 1) = 0.425; frame 1: 0; batch mean 0.2125.
  np.testing.assert_allclose(L.reconstruction_loss(target, pred, w, 4), 0.2125, rtol=1e-6)


def test_self_distillation_loss_eq4_by_hand_and_only_the_student_learns():
  teacher = jnp.zeros((1, 8, 8, 2)).at[0, 0, 4:, :].set(0.5)  # token 1: 4 pixels x 2 channels x 0.25 = 2
  student = jnp.zeros((1, 8, 8, 2))
  w = jnp.asarray([[0.1, 0.4, 0.2, 0.3]])
  np.testing.assert_allclose(L.self_distillation_loss(teacher, student, w, 4), 0.4 * 2 / 4, rtol=1e-6)
  g_teacher, g_student = jax.grad(L.self_distillation_loss, argnums=(0, 1))(teacher, student, w, 4)
  assert not np.asarray(g_teacher).any() and np.asarray(g_student).any()


def test_classification_loss_eq5_by_hand():
  loss = L.classification_loss(jnp.asarray([0.0, math.log(3.0)]), jnp.asarray([1.0, 0.0]))
  np.testing.assert_allclose(loss, (math.log(2.0) + math.log(4.0)) / 2, rtol=1e-6)  # p = 0.5 and 0.75


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


def test_pixel_score_eq6_by_hand():
  frame = jnp.full((1, 1, 1, 1), 0.5)
  teacher = jnp.asarray([0.2, 0.1]).reshape(1, 1, 1, 2)  # frame error 0.3^2, predicted map 0.1^2 -> 0.1
  student = jnp.asarray([0.2, 0.4]).reshape(1, 1, 1, 2)  # teacher-student gap 0.3^2 = 0.09
  o = L.pixel_scores(frame, teacher, student, jnp.zeros(1))  # sigmoid(0) = 0.5
  np.testing.assert_allclose(o, [[[0.4 * 0.1 + 0.3 * 0.09 + 0.3 * 0.5]]], rtol=1e-6)
  o = L.pixel_scores(frame, teacher, student, jnp.zeros(1), alpha=1.0, beta=0.0, gamma=0.0)
  np.testing.assert_allclose(o, [[[0.1]]], rtol=1e-6)


def test_smooth_volume_is_an_in_bounds_mean():
  delta = jnp.zeros((5, 5, 5)).at[2, 2, 2].set(27.0)
  np.testing.assert_allclose(L.smooth_volume(delta, 3)[1:4, 1:4, 1:4], np.ones((3, 3, 3)), rtol=1e-6)
  assert float(L.smooth_volume(delta, 3)[0, 0, 0]) == 0.0
  corner = jnp.zeros((4, 4, 4)).at[0, 0, 0].set(8.0)
  np.testing.assert_allclose(L.smooth_volume(corner, 3)[0, 0, 0], 1.0, rtol=1e-6)  # 8 voxels in bounds
  np.testing.assert_allclose(L.smooth_volume(jnp.full((3, 4, 5), 0.7)), np.full((3, 4, 5), 0.7), rtol=1e-6)


def test_temporal_gaussian_is_centred_normalised_and_keeps_length():
  k = np.asarray(L.gaussian_kernel(11.0, 37))
  np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-6)
  assert k.argmax() == 18 and np.allclose(k, k[::-1])
  np.testing.assert_allclose(L.temporal_gaussian(jnp.zeros(41).at[20].set(1.0), 11.0, 37)[2:39], k, rtol=1e-5)
  assert L.temporal_gaussian(jnp.ones(5), *L.TEMPORAL_GAUSSIAN["shanghaitech"]).shape == (5,)


def test_frame_scores_filter_then_max_then_smooth():
  maps = jax.random.uniform(jax.random.key(0), (6, 8, 8))
  np.testing.assert_allclose(L.frame_scores(maps, box=1, taps=1), maps.max(axis=(1, 2)), rtol=1e-6)
  expected = L.temporal_gaussian(L.smooth_volume(maps, 3).max(axis=(1, 2)), 2.0, 5)
  np.testing.assert_allclose(L.frame_scores(maps, box=3, sigma=2.0, taps=5), expected, rtol=1e-6)
