"""AED-MAE size and set-up: host init, the paper's parameter count, compiled GFLOPs and the backbone labels."""

import jax
import numpy as np

from maskedskip_jax.nn import aed_mae

HW, PATCH, C_IN = 32, 4, 9  # 8 x 8 tokens of 4 x 4; three stacked RGB frames


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
