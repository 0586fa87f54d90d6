"""The bundle's ONNX graphs: written and listed by the manifest, equal to the jax forward, and enough for
`predict --backend onnxruntime` in a process that cannot import jax."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import cv2
import jax
import jax.numpy as jnp
from jax_free import PREDICT
from model_helpers import STREAM_LENGTHS
from model_helpers import random_variables
import numpy as np
import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax import predict as predict_cli
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import export
from maskedskip_jax.deploy import onnx_export
from maskedskip_jax.deploy import onnx_runtime
from maskedskip_jax.deploy import predict
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import streaming
from maskedskip_jax.nn import dtypes
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring
from maskedskip_jax.train import checkpointing
from maskedskip_jax.train import state as train_state

pytestmark = pytest.mark.skipif(not onnx_export.available(), reason="needs the onnx extra (jax2onnx, onnxruntime)")
ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
SHAPE = (2, 3, 32, 32, 1)  # batch 2: the last batch of an odd-length video is padded


@pytest.fixture(scope="module")
def trained():
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  return model, random_variables(model, seed=5)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
  _, variables = trained
  path = tmp_path_factory.mktemp("onnx") / "bundle"
  bundle.save(str(path), variables, CONFIG, {"checkpoint_step": 3}, example_shape=SHAPE, onnx=True)
  return path


def sessions(path):
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top

  return [
    ort.InferenceSession(str(path / name), providers=["CPUExecutionProvider"])
    for name in ("encode.onnx", "decode.onnx")
  ]


def test_bundle_lists_the_graphs_and_stays_loadable(saved):
  manifest = json.loads((saved / bundle.MANIFEST_FILE).read_text())["files"]
  assert {onnx_export.ENCODE_FILE, onnx_export.DECODE_FILE} <= set(manifest)
  config = bundle.verify(str(saved))
  entry = config["onnx"]
  assert entry["batch"] == 2 and entry["opset"] == onnx_export.OPSET and entry["tolerance"] == 1e-4
  assert entry["encode"]["inputs"] == {"frames": [2, 32, 32, 1]}
  assert entry["decode"]["inputs"]["feat1"] == [2, 3, 16, 16, 1] and entry["decode"]["outputs"][-1] == "score"
  model, _, _ = bundle.load(str(saved))  # the jax side reads the bundle as before
  assert model.latent_dim == 8 and bundle.load_exported(str(saved)).input_shape == SHAPE


def test_graphs_match_the_jax_forward(trained, saved):
  model, variables = trained
  encode, decode = sessions(saved)
  clips = np.random.default_rng(7).uniform(0, 1, SHAPE).astype(np.float32)
  with jax.default_matmul_precision("highest"):
    recon = np.asarray(jax.jit(lambda x: model.apply(variables, x, train=False))(clips))
    target = clips[:, 1]
    maps = scoring.score_maps(jnp.asarray(target), jnp.asarray(recon))
    want = {"recon": recon, "score_map": np.asarray(maps), "score": np.asarray(scoring.frame_scores(maps))}
    per_frame = [encode.run(None, {"frames": clips[:, k]}) for k in range(3)]
    for k, got in enumerate(per_frame):
      for a, b in zip(got, streaming.encode(model, variables, jnp.asarray(clips[:, k]))):
        assert np.max(np.abs(a - np.asarray(b))) <= 1e-4
  windows = {f"feat{i + 1}": np.stack([f[i] for f in per_frame], axis=1) for i in range(4)}
  got = dict(zip(want, decode.run(list(want), {"target": target, **windows})))
  for key in want:
    assert got[key].shape == want[key].shape
    assert np.max(np.abs(got[key] - want[key])) <= 1e-4, key


def test_onnx_scorer_scores_streams_like_the_jax_scorer(trained, saved):
  model, variables = trained
  rng = np.random.default_rng(3)
  videos = [rng.integers(0, 256, (n, 32, 32, 1), dtype=np.uint8) for n in STREAM_LENGTHS]
  scorer = onnx_runtime.OnnxScorer(str(saved))
  assert (scorer.temporal, scorer.batch_size, scorer.frame_shape) == (3, 2, (32, 32, 1))
  got = list(scorer.stream(iter(v) for v in videos))
  want = list(streaming.StreamingScorer(model, variables, (32, 32), batch_size=3, map_size=(32, 32)).stream(videos))
  assert [(s.video, s.frame) for s in got] == [(s.video, s.frame) for s in want]
  assert max(abs(a.score - b.score) for a, b in zip(got, want)) <= 1e-4
  assert max(np.max(np.abs(a.score_map - b.score_map)) for a, b in zip(got, want)) <= 1e-4


def write_video(path, count):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (48, 40))
  for k in range(count):
    frame = np.full((40, 48, 3), 40, np.uint8)
    frame[8:20, 3 * k : 3 * k + 10] = (240, 240, 60)  # a square moving right
    writer.write(frame)
  writer.release()
  return path


def scores(out_dir):
  with open(out_dir / "scores.csv") as f:
    return [(float(r["score"]), float(r["score_smoothed"])) for r in csv.DictReader(f)]


def test_predict_with_onnxruntime_needs_no_jax_and_matches_jax(saved, tmp_path):
  video = write_video(tmp_path / "clip.mp4", 9)
  args = ["--model", str(saved), "--video", str(video), "--batch-size", "4"]
  assert predict_cli.main([*args, "--out", str(tmp_path / "jax"), "--no-overlay"]) == 0
  script = tmp_path / "without_jax.py"
  script.write_text(PREDICT)
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  proc = subprocess.run(
    [sys.executable, str(script), *args, "--out", str(tmp_path / "ort"), "--backend", "onnxruntime"],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=env,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "scored 9 frames" in proc.stdout
  assert sorted(os.listdir(tmp_path / "ort")) == ["overlay.mp4", "scores.csv"]
  got, want = np.asarray(scores(tmp_path / "ort")), np.asarray(scores(tmp_path / "jax"))
  assert got.shape == want.shape == (9, 2)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)

  # The blocker works: the jax backend in the same harness fails for want of jax.
  proc = subprocess.run(
    [sys.executable, str(script), *args, "--out", str(tmp_path / "blocked")],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env=env,
    timeout=300,
  )
  assert proc.returncode != 0 and "cannot be imported in this test" in proc.stderr


def test_onnx_backend_errors_are_one_line(trained, saved, tmp_path, capsys):
  _, variables = trained
  plain = tmp_path / "plain"
  bundle.save(str(plain), variables, CONFIG)
  video = write_video(tmp_path / "clip.mp4", 4)
  tampered = tmp_path / "tampered"
  tampered.mkdir()
  for f in saved.iterdir():
    data = f.read_bytes()
    (tampered / f.name).write_bytes(data[:-1] + bytes([data[-1] ^ 1]) if f.name == "decode.onnx" else data)
  cases = [
    (plain, [], "has no ONNX graphs"),
    (tampered, [], "decode.onnx: sha256 does not match manifest.json"),
    (saved, ["--dtype", "bfloat16"], "onnxruntime backend computes in float32"),
  ]
  for model_dir, extra, needle in cases:
    out = tmp_path / "out"
    argv = ["--model", str(model_dir), "--video", str(video), "--out", str(out), "--backend", "onnxruntime", *extra]
    assert predict_cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err, err
    assert not out.exists()
  assert predict.COMPUTE_DTYPES == dtypes.COMPUTE_DTYPES  # the CLI's copy, kept apart from jax


def test_unconvertible_primitive_is_named_in_one_line():
  with pytest.raises(onnx_export.OnnxExportError) as info:
    onnx_export.convert(lambda x: jnp.abs(jnp.fft.fft2(x)), {"x": (2, 8, 8)}, ["y"], "fft")
  message = str(info.value)
  assert "'fft'" in message and "\n" not in message and isinstance(info.value, UserError)


def test_export_check_refuses_a_graph_off_by_more_than_the_tolerance():
  blob = onnx_export.convert(lambda x: 2 * x, {"x": (2, 3)}, ["y"], "double")
  x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
  assert onnx_export.check(blob, "double", [({"x": x}, {"y": 2 * x + 0.9e-4})]) <= 1e-4  # within: the worst is returned
  with pytest.raises(onnx_export.OnnxExportError, match=r"ONNX export of double: output y differs from jax by 0.0002"):
    onnx_export.check(blob, "double", [({"x": x}, {"y": 2 * x + 2e-4})])


def _checkpoint(tmp_path):
  """A workdir with one checkpoint of a tiny model (no dataset: no held-out share, so no alarm to calibrate)."""
  config = tiny_run.config("unused", "", model__latent_dim=8, data__holdout_share=0.0)
  workdir = str(tmp_path / "work")
  model = train_state.build_model(config)
  variables = random_variables(model, 1)
  mngr = checkpointing.manager(workdir, async_save=False)
  state = dict(
    params=variables["params"],
    batch_stats=variables["batch_stats"],
    opt_state=train_state.build_optimizer(config, 1).init(variables["params"]),
    step=jnp.asarray(2, jnp.int32),
    rng=jax.random.PRNGKey(0),
  )
  checkpointing.save(mngr, 2, state, {"config": config_lib.to_json(config)})
  mngr.close()
  return config, workdir


def test_export_falls_back_without_onnx_unless_asked_for_it(tmp_path, monkeypatch, capsys):
  config, workdir = _checkpoint(tmp_path)
  import jax2onnx  # pylint: disable=g-import-not-at-top

  def unconvertible(*args, **kwargs):
    raise NotImplementedError("[lowering] No plugins registered for primitive 'fancy_op'")

  monkeypatch.setattr(jax2onnx, "to_onnx", unconvertible)
  assert export.run(config, workdir, config_name="tiny")  # export.onnx 'off' by default: no conversion tried
  assert "warning" not in capsys.readouterr().err
  config = config_lib.with_values(config, {"export.onnx": "auto"})
  path = export.run(config, workdir, config_name="tiny")  # 'auto': a bundle without the graphs, and a warning
  warning = capsys.readouterr().err
  assert "warning: exporting without ONNX graphs" in warning and "fancy_op" in warning
  assert bundle.verify(path)["onnx"] is None and not os.path.exists(os.path.join(path, onnx_export.ENCODE_FILE))
  before = {name: open(os.path.join(path, name), "rb").read() for name in os.listdir(path)}
  with pytest.raises(onnx_export.OnnxExportError, match="fancy_op") as info:
    export.run(config, workdir, config_name="tiny", onnx=True)
  assert "\n" not in str(info.value)
  assert {name: open(os.path.join(path, name), "rb").read() for name in os.listdir(path)} == before
