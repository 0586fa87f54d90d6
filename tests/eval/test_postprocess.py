"""Temporal post-processing: centring, edges, lengths, per-video independence, parsing."""

import numpy as np
import pytest
from scipy import ndimage

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import postprocess as pp


def test_gaussian_impulse_stays_centred_and_sums_to_one():
  s = np.zeros(41)
  s[20] = 1.0
  (out,) = pp.postprocess([s], "gaussian", sigma=2)
  assert len(out) == 41
  assert int(np.argmax(out)) == 20
  np.testing.assert_allclose(out[:20], out[21:][::-1], atol=1e-15)  # symmetric about the impulse: no lag
  assert out.sum() == pytest.approx(1.0)


def test_gaussian_matches_scipy_reflect():
  rng = np.random.default_rng(0)
  s = rng.random(60)
  for sigma in (1.0, 2.5, 3.0):
    (out,) = pp.postprocess([s], f"gaussian:sigma={sigma}")
    radius = int(4 * sigma)
    want = ndimage.gaussian_filter1d(s, sigma, mode="reflect", radius=radius)
    np.testing.assert_allclose(out, want, rtol=1e-10)


def test_gaussian_taps_default_and_explicit():
  assert len(pp.gaussian_taps(3.0)) == 25
  assert len(pp.gaussian_taps(1.5)) == 13
  (wide,) = pp.postprocess([np.eye(1, 31, 15)[0]], "gaussian:sigma=3,taps=7")
  assert np.count_nonzero(wide) == 7


def test_median_keeps_step_edge_and_removes_spike():
  step = np.r_[np.zeros(30), np.ones(30)]
  spiky = step.copy()
  spiky[10] = 5.0
  (out,) = pp.postprocess([spiky], "median", window=5)
  np.testing.assert_array_equal(out, step)


def test_gaussian_keeps_step_edge_position():
  step = np.r_[np.zeros(30), np.ones(30)]
  (out,) = pp.postprocess([step], "gaussian", sigma=2)
  # The half-way crossing stays between frames 29 and 30, symmetrically.
  np.testing.assert_allclose(out[29] + out[30], 1.0, atol=1e-12)
  assert out[29] < 0.5 < out[30]


def test_median_default_window_17_and_nearest_edges():
  s = np.arange(20, dtype=float)
  (out,) = pp.postprocess([s], "median")
  # Edge replication: frame 0 sees eight copies of 0 plus 0..8, so its median is 0; the centre is untouched.
  assert out[0] == 0.0 and out[10] == 10.0 and out[19] == 19.0
  (short,) = pp.postprocess([np.array([3.0, 1.0, 2.0])], "median")
  np.testing.assert_array_equal(short, [3.0, 2.0, 2.0])


def test_lengths_preserved_and_videos_independent():
  rng = np.random.default_rng(1)
  a, b = rng.random(50), 100 + 10 * rng.random(7)
  for method in ("none", "median", "gaussian", "minmax", "zscore", "median+minmax", "gaussian:sigma=1+zscore"):
    both = pp.postprocess([a, b], method)
    alone = pp.postprocess([a], method) + pp.postprocess([b], method)
    assert [len(x) for x in both] == [50, 7]
    for x, y in zip(both, alone):
      np.testing.assert_array_equal(x, y)


def test_minmax_and_zscore_per_video():
  s = np.array([2.0, 4.0, 6.0])
  (mm,) = pp.postprocess([s], "minmax")
  np.testing.assert_allclose(mm, [0.0, 0.5, 1.0])
  (z,) = pp.postprocess([s], "zscore")
  np.testing.assert_allclose(z, (s - 4.0) / np.sqrt(8 / 3))


@pytest.mark.parametrize("method", ["minmax", "zscore", "median+minmax", "gaussian+zscore"])
def test_constant_video_gives_zeros(method):
  (out,) = pp.postprocess([np.full(9, 0.7)], method)
  assert np.all(np.isfinite(out))
  np.testing.assert_array_equal(out, 0.0)


def test_chain_is_applied_in_order():
  s = np.array([0.0, 0.0, 9.0, 1.0, 1.0, 1.0, 2.0])
  (chained,) = pp.postprocess([s], ["median:window=3", "minmax"])
  (med,) = pp.postprocess([s], "median:window=3")
  (want,) = pp.postprocess([med], "minmax")
  np.testing.assert_array_equal(chained, want)
  assert pp.postprocess([s], "median+minmax", window=3)[0].tolist() == want.tolist()


def test_none_returns_a_copy():
  s = np.array([1.0, 2.0])
  (out,) = pp.postprocess([s], "none")
  out[0] = 9.0
  assert s[0] == 1.0


def test_parse_method_and_describe():
  assert pp.parse_method("gaussian:sigma=3") == ("gaussian", {"sigma": 3.0, "taps": None})
  assert pp.parse_method(" Median:window=9 ") == ("median", {"window": 9})
  assert pp.parse_method("minmax") == ("minmax", {})
  assert pp.describe(pp.parse_chain("gaussian:sigma=3+zscore")) == "gaussian:sigma=3.0,taps=25+zscore"


@pytest.mark.parametrize(
  "spec",
  [
    "smooth",
    "median:window=4",
    "median:size=3",
    "gaussian:sigma=0",
    "gaussian:sigma",
    "median:window=abc",
    "gaussian:taps=6",
  ],
)
def test_bad_specs_are_user_errors(spec):
  with pytest.raises(UserError):
    pp.postprocess([np.zeros(5)], spec)


def test_unknown_name_lists_options():
  with pytest.raises(UserError, match="none, median, gaussian, minmax, zscore"):
    pp.parse_method("butterworth")


def test_option_no_step_takes_is_user_error():
  with pytest.raises(UserError, match="sigma"):
    pp.postprocess([np.zeros(5)], "median+minmax", sigma=2)
