"""AED-MAE through the training loop (CPU, float32): each stage moves only its parameter groups, a run resumed
from a mid-run checkpoint ends bit-identical to an uninterrupted one, and its config errors are one line."""

import os
import shutil

import jax
import numpy as np
import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import aed_mae
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import loop
from maskedskip_jax.train import metrics_log
from maskedskip_jax.train import sharding
from maskedskip_jax.train import state as train_state

STEPS, EVERY = 6, 2  # stage 1 is steps 1-4, stage 2 steps 5-6 (stage2_fraction 1/3)
SMALL = dict(
  **tiny_run.AED_MAE,
  train__stage2_fraction=1 / 3,
  train__paste_prob=0.5,  # labels and anomaly maps of both kinds
  train__num_steps=STEPS,
  train__checkpoint_every_steps=EVERY,
)


def _config(root, **kw):
  return tiny_run.config(root, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def reference(tiny_dataset, tmp_path_factory):
  """(config, workdir) of an uninterrupted run, with the checkpoints of steps 2, 4 and 6."""
  config = _config(tiny_dataset)
  workdir = str(tmp_path_factory.mktemp("aed_mae") / "reference")
  assert loop.train(config, workdir)["step"] == STEPS
  return config, workdir


def _state(config, workdir, step):
  model = train_state.build_model(config)
  abstract = train_state.abstract_state(
    model=model,
    tx=train_state.build_optimizer(config, STEPS),
    input_shape=train_state.clip_shape(config),
    placement=sharding.replicated(sharding.make_mesh()),
  )
  mngr = checkpointing.manager(workdir, read_only=True)
  try:
    return checkpointing.restore(mngr, abstract, step)[0]
  finally:
    mngr.close()


def _moved(before, after) -> dict[str, bool]:
  """Top-level name -> whether any leaf under it changed, over a {params | batch_stats} tree."""
  return {
    name: any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[name]), jax.tree.leaves(after[name])))
    for name in before
  }


def _opt_moved(before, after) -> dict[str, bool]:
  """Parameter group -> whether its Adam state changed (the gates' own step counters left out)."""
  out = {}
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(before), jax.tree.leaves(after)):
    keys = jax.tree_util.keystr(path)
    group = next(g for g in aed_mae.LABELS if f"'{g}'" in keys)
    if not keys.endswith(".step"):
      out[group] = out.get(group, False) or not np.array_equal(a, b)
  return out


def test_stage1_moves_backbone_and_teacher_stage2_only_the_student(reference):
  config, workdir = reference
  s2, s4, s6 = (_state(config, workdir, s) for s in (2, 4, 6))
  assert int(s2["step"]) == 2 and int(s6["step"]) == 6
  for before, after, stage in ((s2, s4, 1), (s4, s6, 2)):
    for tree in ("params", "batch_stats"):
      moved = _moved(before[tree], after[tree])
      for name, changed in moved.items():
        # Stage 1 moves everything but the student (the [CLS] and mask tokens get gradients too); stage 2 only it.
        assert changed == ((aed_mae.label_of(name) == "student") == (stage == 2)), (stage, tree, name)
    assert _opt_moved(before["opt_state"], after["opt_state"]) == {
      "backbone": stage == 1,
      "teacher_head": stage == 1,
      "student": stage == 2,
    }
  # The student's Adam (and its schedule) starts at stage 2 from count 0: untouched through stage 1.
  counts = [
    int(x)
    for p, x in jax.tree_util.tree_leaves_with_path(s6["opt_state"])
    if "'student'" in jax.tree_util.keystr(p) and jax.tree_util.keystr(p).endswith(".count")
  ]
  assert counts and set(counts) == {STEPS - 4}, counts


def test_metrics_name_the_stage_and_its_losses(reference):
  _, workdir = reference
  records = metrics_log.read(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in records] == list(range(1, STEPS + 1))
  assert [r["stage"] for r in records] == [1, 1, 1, 1, 2, 2]
  for r in records:
    live = ("reconstruction", "classification") if r["stage"] == 1 else ("self_distillation",)
    assert all(r[k] > 0 for k in live), r
    assert r["loss"] == pytest.approx(sum(r[k] for k in live), rel=1e-5), r


def test_resumed_run_across_the_stage_boundary_is_bit_identical(reference, tmp_path):
  config, workdir = reference
  resumed = str(tmp_path / "resumed")
  # The run as it stood at step 2 (stage 1), then trained to the end through the same loop.
  shutil.copytree(checkpointing.checkpoint_dir(workdir), checkpointing.checkpoint_dir(resumed))
  for name in os.listdir(checkpointing.checkpoint_dir(resumed)):
    if name.isdigit() and int(name) > 2:
      shutil.rmtree(os.path.join(checkpointing.checkpoint_dir(resumed), name))
  assert loop.train(config, resumed)["step"] == STEPS
  # It resumed (a fresh start would end the same): it logged the steps after 2 only.
  assert [r["step"] for r in metrics_log.read(os.path.join(resumed, "metrics.jsonl"))] == [3, 4, 5, 6]
  _, want, step_a = train_state.restore_variables(config, workdir)
  model, got, step_b = train_state.restore_variables(config, resumed)
  assert isinstance(model, aed_mae.AedMae) and step_a == step_b == STEPS
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


def test_changed_architecture_is_refused_on_resume(tiny_dataset):
  saved = {"config": config_lib.to_json(_config(tiny_dataset))}
  with pytest.raises(UserError, match=r"model\.aed_mae\.patch=8.*16"):
    train_state.check_same_experiment(saved, _config(tiny_dataset, model__aed_mae__patch=16), "ckpt")
  # The U-Net family ignores the aed_mae keys.
  unet = {"config": config_lib.to_json(tiny_run.config(tiny_dataset))}
  train_state.check_same_experiment(unet, tiny_run.config(tiny_dataset, model__aed_mae__patch=16), "ckpt")


@pytest.mark.parametrize(
  "overrides, match",
  [
    (dict(model__temporal=5), r"config key model\.temporal: .*frame_offset=1.*expected 3, got 5"),
    (dict(model__temporal=1), r"config key model\.temporal: .*expected 3, got 1"),
    (dict(data__image_size=(48, 48), model__aed_mae__patch=32), r"config key data\.image_size: .*patch=32.*48x48"),
    (dict(model__aed_mae__heads=3), r"config key model\.aed_mae\.embed_dim: expected a multiple of .*heads=3"),
    (dict(model__mask_head=True), r"config key model\.mask_head: aed_mae"),
    (dict(model__aed_mae__mask_ratio=1.0), r"config key model\.aed_mae\.mask_ratio: expected a fraction in \[0, 1\)"),
    (dict(train__stage2_fraction=1.0), r"config key train\.stage2_fraction: expected a fraction in \[0, 1\)"),
    (dict(model__aed_mae__decoder_depth=1), r"config key model\.aed_mae\.decoder_depth: expected a number >= 2"),
  ],
)
def test_bad_aed_mae_configs_are_one_line_errors(tiny_dataset, overrides, match):
  with pytest.raises(UserError, match=match) as e:
    validation.validate(_config(tiny_dataset, **overrides))
  assert "\n" not in str(e.value)


def test_the_default_aed_mae_settings_are_the_papers():
  c = config_lib.with_values(config_lib.default_config(), {"model.variant": "aed_mae", "model.temporal": 7})
  validation.validate(c)
  model = train_state.build_model(c)
  widths = dict(embed_dim=256, depth=3, decoder_dim=128, decoder_depth=3, student_depth=1, heads=4, patch=16)
  assert {k: getattr(model, k) for k in widths} == widths
  assert train_state.stage1_steps(c, 140) == 100  # 100 + 40 epochs


def test_table2_first_row_trains_the_teacher_alone_without_its_components(tiny_dataset, tmp_path):
  """The vanilla masked AE of Table 2: no student stage, no classifier loss; the switches reach the step."""
  config = _config(
    tiny_dataset,
    train__stage2_fraction=0.0,
    train__num_steps=2,
    model__aed_mae__motion_weights=False,
    model__aed_mae__anomaly_maps=False,
    model__aed_mae__classifier=False,
  )
  workdir = str(tmp_path / "vanilla")
  loop.train(config, workdir)
  records = metrics_log.read(os.path.join(workdir, "metrics.jsonl"))
  assert [r["stage"] for r in records] == [1, 1]
  assert all(r["classification"] == 0.0 and r["reconstruction"] > 0 for r in records)
