import jax
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import aed_mae_scorer
from maskedskip_jax.nn import aed_mae
from maskedskip_jax.nn import aed_mae_losses

HW, C, OFFSET = 16, 1, 2


@pytest.fixture(scope="module")
def tiny():
  model = aed_mae.AedMae(
    channels=C, patch=4, embed_dim=16, depth=1, decoder_dim=8, decoder_depth=2, student_depth=1, heads=2
  )
  return model, aed_mae.init_variables(model, 0, (1, HW, HW, 3 * C))


def _video(n, seed):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, HW, HW, C), dtype=np.uint8)


def _by_hand(model, variables, frames, settings):
  """Eq. 6 on every frame at once, then the whole-volume filter, frame max and Gaussian of aed_mae_losses."""
  n = len(frames)
  x = frames.astype(np.float32) / 255.0
  idx = np.arange(n)
  stacked = np.concatenate([x[np.clip(idx - OFFSET, 0, n - 1)], x, x[np.clip(idx + OFFSET, 0, n - 1)]], axis=-1)

  def formula(x, stacked):  # compiled as one program: op by op, a CPU compiles a kernel per op and shape
    out = model.apply(variables, stacked, train=False)
    maps = aed_mae_losses.pixel_scores(
      x, out["teacher"], out["student"], out["logit"], settings.alpha, settings.beta, settings.gamma
    )
    return aed_mae_losses.frame_scores(maps, settings.box, settings.sigma, settings.taps)

  return np.asarray(jax.jit(formula)(x, stacked))


def test_scores_match_the_whole_volume_formula_across_chunks(tiny):
  model, variables = tiny
  settings = aed_mae_scorer.ScoreSettings(box=5, sigma=3.0, taps=9, masking="none")
  videos = [_video(100, 1), _video(7, 2)]  # 100 frames: several filter chunks; 7: fewer than one batch
  scorer = aed_mae_scorer.AedMaeScorer(
    model, variables, (HW, HW), frame_offset=OFFSET, batch_size=16, settings=settings, map_size=(4, 4)
  )
  items = list(scorer.compile().stream(iter(videos)))
  assert [(i.video, i.frame) for i in items] == [(0, f) for f in range(100)] + [(1, f) for f in range(7)]
  assert items[0].score_map.shape == (4, 4)
  for v, frames in enumerate(videos):
    got = np.array([i.score for i in items if i.video == v])
    np.testing.assert_allclose(got, _by_hand(model, variables, frames, settings), rtol=2e-5, atol=1e-6)
  assert set(scorer.components) == set(aed_mae_scorer.COMPONENTS)
  alone = aed_mae_scorer.ScoreSettings(alpha=1.0, beta=0.0, gamma=0.0, box=5, sigma=3.0, taps=9, masking="none")
  np.testing.assert_allclose(
    scorer.components["reconstruction"][0], _by_hand(model, variables, videos[0], alone), rtol=2e-5, atol=1e-6
  )


def test_headline_is_the_weighted_sum_of_its_terms(tiny):
  model, variables = tiny
  settings = aed_mae_scorer.ScoreSettings(
    box=3, taps=1, masking="none"
  )  # both filters are linear, so the sum survives them
  scorer = aed_mae_scorer.AedMaeScorer(model, variables, (HW, HW), frame_offset=OFFSET, settings=settings)
  scores = np.array([i.score for i in scorer.stream([_video(20, 3)])])
  parts = {k: v[0] for k, v in scorer.components.items()}
  assert not np.allclose(parts["reconstruction"], parts["distillation"])
  # The frame max does not distribute over the sum, so the headline is bounded by the weighted maxima.
  bound = 0.4 * parts["reconstruction"] + 0.3 * parts["distillation"] + 0.3 * parts["classifier"]
  assert np.all(scores <= bound + 1e-6) and np.all(scores >= 0.3 * parts["classifier"] - 1e-6)


def test_bad_frames_and_sizes_are_one_line_errors(tiny):
  model, variables = tiny
  with pytest.raises(UserError, match="odd"):
    aed_mae_scorer.AedMaeScorer(
      model, variables, (HW, HW), frame_offset=1, settings=aed_mae_scorer.ScoreSettings(box=4)
    )
  scorer = aed_mae_scorer.AedMaeScorer(model, variables, (HW, HW), frame_offset=1)
  with pytest.raises(UserError, match="video 0: expected uint8"):
    list(scorer.stream([np.zeros((3, HW, HW, 3), np.uint8)]))


def _outputs(model, variables, x, masking, seed=0):
  settings = aed_mae_scorer.ScoreSettings(masking=masking, mask_seed=seed)
  keys = aed_mae_scorer.frame_keys(seed, np.arange(len(x)))
  return jax.jit(lambda v, x, k: aed_mae_scorer.masked_outputs(model, settings, v, x, k))(variables, x, keys)


def test_cover_rebuilds_every_token_without_seeing_it(tiny):
  """Under `cover`, a token's output never depends on its own pixels (an anomaly cannot be copied through); with
  nothing dropped it does."""
  model, variables = tiny
  x = np.random.default_rng(5).random((2, HW, HW, 3 * C), dtype=np.float32)
  changed = x.copy()
  changed[:, 4:8, 8:12] = 1.0 - changed[:, 4:8, 8:12]  # one 4x4 token, in every stacked frame
  for masking, copies in (("cover", False), ("none", True)):
    before, after = (_outputs(model, variables, v, masking)[0] for v in (x, changed))
    token = np.abs(np.asarray(after - before))[:, 4:8, 8:12].max()
    assert (token > 1e-3) if copies else token == 0.0, (masking, token)
    assert np.isfinite(np.asarray(before)).all()


def test_random_masking_is_one_pass_seeded_by_frame(tiny):
  model, variables = tiny
  n, m = (HW // 4) ** 2, int((HW // 4) ** 2 * model.mask_ratio)
  keys = aed_mae_scorer.frame_keys(0, np.arange(3))
  for masking, passes in (("random", 1), ("cover", -(-n // m)), ("none", 1)):
    sets = aed_mae_scorer.dropped_sets(model, aed_mae_scorer.ScoreSettings(masking=masking), keys, n)
    three = aed_mae_scorer.dropped_sets(model, aed_mae_scorer.ScoreSettings(masking=masking, draws=3), keys, n)
    assert len(three) == (1 if masking == "none" else 3 * passes)
    for a, b in zip(sets, three):  # the first draw is the single draw's, the others differ from it
      np.testing.assert_array_equal(a, b)
    if masking != "none":
      assert not np.array_equal(three[0], three[passes])
    assert len(sets) == passes
    dropped = np.stack([np.asarray(d) for d in sets])
    assert (dropped.sum(axis=2) == (0 if masking == "none" else m)).all()
    if masking == "cover":
      assert dropped.any(axis=0).all()  # every token of every frame dropped at least once
  x = np.random.default_rng(6).random((2, HW, HW, 3 * C), dtype=np.float32)
  a, b = (_outputs(model, variables, x, "random", seed)[0] for seed in (0, 1))
  assert not np.allclose(a, b)


def test_scores_depend_neither_on_the_batch_size_nor_on_the_other_videos(tiny):
  model, variables = tiny
  video, other = _video(11, 4), _video(5, 8)
  got = []
  for batch, videos in ((4, [video]), (16, [other, video])):  # alone, or second in the stream as evaluate has it
    scorer = aed_mae_scorer.AedMaeScorer(model, variables, (HW, HW), frame_offset=OFFSET, batch_size=batch)
    got.append([i.score for i in scorer.stream(videos) if i.video == len(videos) - 1])
  np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-7)


def test_unknown_masking_is_a_one_line_error():
  with pytest.raises(UserError, match="masking must be one of none, random, cover, got 'all'"):
    aed_mae_scorer.ScoreSettings(masking="all")
  with pytest.raises(UserError, match="draws must be a positive integer, got 0"):
    aed_mae_scorer.ScoreSettings(draws=0)


def test_a_model_trained_without_masking_is_scored_unmasked(tiny):
  model, variables = tiny
  unmasked = model.clone(mask_ratio=0.0)
  x = np.random.default_rng(7).random((2, HW, HW, 3 * C), dtype=np.float32)
  for masking in aed_mae_scorer.MASKING:
    got = _outputs(unmasked, variables, x, masking)
    np.testing.assert_allclose(got[0], _outputs(unmasked, variables, x, "none")[0], rtol=1e-6)
    assert np.isfinite(np.asarray(got[0])).all()
