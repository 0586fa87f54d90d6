"""The hybrid frame score: its formula, training-video standardisation, and its place in an evaluation."""

from model_helpers import make_store
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import hybrid
from maskedskip_jax.nn import models


def test_standardised_hybrid_against_hand_computed_values():
  spec = hybrid.Spec(alpha=1.0, beta=2.0, motion="frame_diff", standardise=True)
  stats = hybrid.Standardisation(recon_mean=1.0, recon_std=2.0, motion_mean=10.0, motion_std=5.0)
  got = hybrid.combine([np.array([1.0, 5.0])], [np.array([10.0, 20.0])], None, spec, stats)
  np.testing.assert_allclose(got[0], [0.0 + 2 * 0.0, 2.0 + 2 * 2.0])
  assert spec.formula().startswith("hybrid_alpha * zreconstruction + hybrid_beta * zmotion(frame_diff)")
  raw = hybrid.Spec(alpha=1.0, beta=2.0, motion="frame_diff")
  np.testing.assert_allclose(hybrid.combine([np.array([1.0])], [np.array([3.0])], None, raw)[0], [7.0])
  with pytest.raises(UserError, match="needs the training videos' statistics"):
    hybrid.combine([np.array([1.0])], [np.array([3.0])], None, spec)


def test_standardisation_uses_every_training_frame_and_refuses_a_constant_term():
  frames = [np.zeros((4, 16, 16, 1), np.uint8), np.full((3, 16, 16, 1), 200, np.uint8)]
  frames[0][2, :8, :8] = 255  # one frame that differs from its predecessor
  spec = hybrid.Spec(beta=1.0, motion="frame_diff", standardise=True, patch=8)
  recon = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0])]
  stats = hybrid.standardisation(recon, frames, spec)
  assert stats.recon_mean == pytest.approx(4.0) and stats.recon_std == pytest.approx(np.std(np.arange(1, 8)))
  motion = np.concatenate([baselines.video_scores("frame_diff", f, 8) for f in frames])
  assert motion.max() > 0 and stats.motion_mean == pytest.approx(motion.mean())
  with pytest.raises(UserError, match="every training frame has the same motion score"):
    hybrid.standardisation(recon, [np.zeros((4, 16, 16, 1), np.uint8)], spec)


def test_unknown_motion_term_is_refused():
  with pytest.raises(UserError, match="eval.hybrid_motion: expected one of gradient, frame_diff, mog2, flow"):
    hybrid.Spec(motion="sift")


def test_standardised_flow_hybrid_in_an_evaluation(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model)
  store, _, _ = make_store()
  train_store, _, _ = make_store(with_labels=False)
  common = dict(batch_size=5, pixel_size=16, progress=False, baselines="flow", worst_frames=0)
  plain = evaluate.evaluate_store(model, variables, store, out_dir=str(tmp_path / "plain"), **common)
  report = evaluate.evaluate_store(
    model,
    variables,
    store,
    out_dir=str(tmp_path / "hybrid"),
    hybrid_beta=1.0,
    hybrid_motion="flow",
    hybrid_standardise=True,
    train_store=train_store,
    **common,
  )
  section = report["frame_score"]
  assert section["hybrid_motion"] == "flow" and section["standardisation"]["recon_std"] > 0
  # The terms alone are reported: the reconstruction's row equals the plain evaluation's headline, the motion
  # term's equals the flow baseline's.
  components = report["score_components"]
  assert components["reconstruction"]["frame_auc_micro"] == plain["frame_auc_micro"]
  assert components["motion (flow)"]["frame_auc_micro"] == report["baselines"]["flow"]["frame_auc_micro"]
  assert "score_components" not in plain
  with pytest.raises(UserError, match="needs the training split"):
    evaluate.evaluate_store(
      model, variables, store, out_dir=str(tmp_path / "none"), hybrid_beta=1.0, hybrid_standardise=True, **common
    )
