"""The data API: batches, resumption, process shares, backends agree."""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_pipeline import clips
from data_pipeline import framestore
from data_pipeline import pipeline
from maskedskip_jax.errors import UserError
from tests import fake_layouts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENGTHS = (9, 6, 11)
BACKENDS = ("tfdata", "grain")


class _Record:
  def __init__(self, name, labels=None):
    self.name, self.labels, self.mask_loader = name, labels, None


@pytest.fixture(scope="module")
def store():
  """In-memory store of random frames (so that every gather is checkable)."""
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (sum(LENGTHS), 4, 6, 2 + 1), dtype=np.uint8)
  records = [_Record("a", (np.arange(9) > 4).astype(np.uint8)), _Record("b"), _Record("c", np.ones(11, np.uint8))]
  return framestore.FrameStore(frames, LENGTHS, records)


def _backend(name):
  pytest.importorskip("tensorflow" if name == "tfdata" else "grain")
  return name


def _take(it, n):
  return [b["clips"] for b in itertools.islice(it, n)]


@pytest.mark.parametrize("name", BACKENDS)
def test_train_batches_are_the_planned_clips_in_unit_range(store, name):
  it = pipeline.train_iterator(store, global_batch_size=4, temporal=3, seed=7, backend=_backend(name))
  plan = clips.TrainPlan(clips.train_windows(LENGTHS, 3), 4, 3, seed=7)
  for step, batch in enumerate(_take(it, 5)):
    assert batch.dtype == np.float32 and batch.shape == (4, 3, 4, 6, 3)
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    expected = store.frames[plan.frame_indices(step)].astype(np.float32) / 255
    np.testing.assert_array_equal(batch, expected)


@pytest.mark.parametrize("name", BACKENDS)
def test_start_step_resumes_exactly_across_epochs(store, name):
  spe = pipeline.steps_per_epoch(store, 4, 3)
  assert spe == (7 + 4 + 9) // 4
  fresh = _take(pipeline.train_iterator(store, 4, 3, seed=1, backend=_backend(name)), spe + 3)
  resumed = _take(pipeline.train_iterator(store, 4, 3, seed=1, start_step=spe - 1, backend=name), 4)
  for a, b in zip(fresh[spe - 1 :], resumed):
    np.testing.assert_array_equal(a, b)
  other_seed = _take(pipeline.train_iterator(store, 4, 3, seed=2, backend=name), 1)
  assert not np.array_equal(fresh[0], other_seed[0])
  # The second epoch is a different order, not a replay of the first.
  assert not all(np.array_equal(fresh[i], fresh[spe + i]) for i in range(3))


@pytest.mark.parametrize("name", BACKENDS)
def test_two_processes_split_the_global_batch(store, name):
  whole = _take(pipeline.train_iterator(store, 4, 3, seed=3, backend=_backend(name)), 3)
  parts = [
    _take(pipeline.train_iterator(store, 4, 3, seed=3, process_index=i, process_count=2, backend=name), 3)
    for i in range(2)
  ]
  for step in range(3):
    assert parts[0][step].shape[0] == parts[1][step].shape[0] == 2
    np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), whole[step])


@pytest.mark.parametrize("name", BACKENDS)
def test_eval_batches_cover_every_frame_once(store, name):
  batches = list(pipeline.eval_iterator(store, batch_size=8, temporal=3, backend=_backend(name)))
  assert len(batches) == pipeline.eval_num_batches(store, 8) == 4
  cat = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  assert cat["clips"].dtype == np.float32 and cat["valid"].dtype == bool
  assert cat["video"].dtype == cat["frame"].dtype == cat["label"].dtype == (np.int32)
  valid = cat["valid"]
  assert valid.sum() == sum(LENGTHS) and not valid[sum(LENGTHS) :].any()
  pairs = list(zip(cat["video"][valid].tolist(), cat["frame"][valid].tolist()))
  assert pairs == [(v, f) for v, n in enumerate(LENGTHS) for f in range(n)]
  frames = store.frames.astype(np.float32) / 255
  for row in np.flatnonzero(valid):
    v, f = cat["video"][row], cat["frame"][row]
    video = frames[store.offsets[v] : store.offsets[v] + LENGTHS[v]]
    taps = np.clip([f - 1, f, f + 1], 0, LENGTHS[v] - 1)
    np.testing.assert_array_equal(cat["clips"][row], video[taps])
    labels = store.labels(v)
    assert cat["label"][row] == (-1 if labels is None else labels[f])


def test_backends_give_identical_batches(store):
  _backend("tfdata"), _backend("grain")
  train = [_take(pipeline.train_iterator(store, 4, 3, seed=9, start_step=2, backend=b), 4) for b in BACKENDS]
  for a, b in zip(*train):
    np.testing.assert_array_equal(a, b)
  evals = [list(pipeline.eval_iterator(store, 8, 5, backend=b)) for b in BACKENDS]
  for a, b in zip(*evals):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_load_split_from_files(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path / "d"), test=(("01", 6),))
  store = pipeline.load_split("generic", root, "test", image_size=8, channels=1, cache_dir=str(tmp_path / "c"))
  assert store.frames.shape == (6, 8, 8, 1) and store.video_names == ["01"]
  np.testing.assert_array_equal(store.labels(0), [0, 0, 0, 1, 1, 1])
  assert isinstance(store.frames, np.memmap)
  for name in BACKENDS:  # Both stream from the memory-mapped cache.
    (batch,) = pipeline.eval_iterator(store, 6, 1, backend=_backend(name))
    np.testing.assert_array_equal(batch["clips"][:, 0], store.frames.astype(np.float32) / 255)
  with pytest.raises(UserError, match="image_size"):
    pipeline.load_split("generic", root, "test", image_size="big")


def test_user_errors(store):
  with pytest.raises(UserError, match="backend"):
    pipeline.train_iterator(store, 4, 3, backend="torch")
  with pytest.raises(UserError, match=r"b has 6 frames.*temporal=7"):
    pipeline.train_iterator(store, 4, 7, backend="grain")
  assert pipeline.resolve_backend("grain") == "grain"


def test_auto_backend_prefers_tfdata():
  pytest.importorskip("tensorflow")
  assert pipeline.resolve_backend(None) == pipeline.resolve_backend("auto") == "tfdata"


def test_grain_path_works_without_tensorflow(tmp_path):
  pytest.importorskip("grain")
  root = fake_layouts.make_generic(str(tmp_path / "d"))
  script = textwrap.dedent(f"""
      import sys
      sys.modules["tensorflow"] = None  # Any import of TF now fails.
      from data_pipeline import pipeline
      store = pipeline.load_split("generic", {root!r}, "train", 8, 3)
      batch = next(pipeline.train_iterator(store, 2, 3, backend="auto"))
      assert batch["clips"].shape == (2, 3, 8, 8, 3), batch["clips"].shape
      batches = list(pipeline.eval_iterator(store, 4, 3, backend="grain"))
      assert sum(b["valid"].sum() for b in batches) == 5
      print("ok")
      """)
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "ok"
  assert "streaming with Grain" in result.stderr
