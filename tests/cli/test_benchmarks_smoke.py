"""The speed benchmarks run end to end at a tiny size and report sane JSON; their side paths compute the same maths."""

import json
import os
import subprocess
import sys
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks")
TINY = ["--latent-dim", "8", "--image-size", "32", "--batch", "2", "--steps", "2", "--warmup", "0"]
# The experimental layers live beside the benchmark scripts, not in the package.
sys.path[:0] = [p for p in (BENCH, ROOT) if p not in sys.path]


def _uniform(seed, shape):
  # numpy draws: a jitted threefry draw costs seconds of XLA:CPU compile per shape.
  return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))


@pytest.fixture(scope="module")
def runs():
  """The scripts at once (each is mostly single-threaded XLA compiling): {script: JSON}."""
  scripts = {
    "model_speed.py": [*TINY, "--streaming"],
    "cpu_ab.py": [*TINY[:6], "--candidates", "base,xla_convs,fused_branches", "--rounds", "2"],
  }
  try:
    import torch  # noqa: F401  (importability is the question)

    scripts["vs_pytorch.py"] = TINY
  except ImportError:
    pass
  procs = {
    name: subprocess.Popen(
      [sys.executable, os.path.join(BENCH, name), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for name, args in scripts.items()
  }
  out = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    out[name] = json.loads(stdout)
  return out


def _positive(section, *keys):
  for key in keys:
    assert section[key] > 0, (key, section)


@pytest.mark.slow  # times several candidates; a benchmark, not a contract
def test_cpu_ab_times_each_candidate_against_base(runs):
  r = runs["cpu_ab.py"]
  assert r["what"] == "train" and r["rounds"] == 2 and r["shape"][0] == 2
  assert set(r["step_ms_median"]) == set(r["ratio_to_base"]) == {"base", "xla_convs", "fused_branches"}
  assert r["ratio_to_base"]["base"] == 1.0 and r["ratio_to_base"]["fused_branches"] > 0
  assert r["max_abs_diff_vs_base"]["fused_branches"] < 1e-4  # the same network, one fused conv
  assert r["max_abs_diff_vs_base"]["xla_convs"] < 1e-4  # the same network, other conv lowerings


@pytest.mark.slow  # shares the timed `runs` fixture, minutes of compiles
def test_model_speed_reports_train_and_inference(runs):
  r = runs["model_speed.py"]
  assert (r["batch"], r["image_size"], r["latent_dim"], r["dtype"]) == (2, 32, 8, "float32")
  assert r["train"]["train_step"] == "maskedskip_jax.train.step.train_step"
  _positive(r["train"], "compile_s", "step_ms_median", "clips_per_s")
  _positive(r["inference"], "compile_s", "step_ms_median", "frames_per_s")
  assert r["train"]["clips_per_s"] == pytest.approx(2e3 / r["train"]["step_ms_median"], rel=1e-2)
  assert np.isfinite(r["train"]["loss"])
  assert any(k.startswith("peak_") for k in r["train"])
  assert r["device_kind"] and r["jax_version"] == jax.__version__
  assert r["conv_lowering"] == ("cpu" if jax.default_backend() == "cpu" else "xla")
  if "skipped" not in r["streaming"]:
    _positive(r["streaming"], "step_ms_median", "frames_per_s")


@pytest.mark.slow  # shares the timed `runs` fixture, minutes of compiles
def test_vs_pytorch_reports_both_sides_and_ratios(runs):
  pytest.importorskip("torch")
  r = runs["vs_pytorch.py"]
  for side in ("jax", "torch"):
    _positive(r[side]["train"], "step_ms_median", "clips_per_s")
    _positive(r[side]["inference"], "step_ms_median", "frames_per_s")
  # The twin is the same network: the same number of parameters on both sides.
  assert r["jax"]["params"] == r["torch"]["params"] > 0
  assert r["ratio"]["train_time_ratio"] == pytest.approx(
    r["jax"]["train"]["step_ms_median"] / r["torch"]["train"]["step_ms_median"], rel=1e-2
  )
  _positive(r["ratio"], "train_speedup", "inference_speedup")
  assert r["torch_threads"] >= 1 and r["torch_skips"] == "full3d"


def test_torch_centre_only_skips_equal_full_3d():
  torch = pytest.importorskip("torch")
  import torch_reference  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  full = torch_reference.build("maskedskip_unet", 16, 3, 3, "full3d").eval()
  centre = torch_reference.build("maskedskip_unet", 16, 3, 3, "centre").eval()
  centre.load_state_dict(full.state_dict())
  x = torch.rand(2, 3, 3, 32, 32)
  with torch.no_grad():
    a, b = full(x), centre(x)
  assert float((a - b).abs().max()) < 1e-5
  conv = full.mconv1
  feat = torch.rand(2, conv.conv.in_channels, 3, 20, 20)
  with torch.no_grad():
    want = conv(feat)[:, :, 1]
    got = torch_reference.centre_only_skip(conv, feat)
  assert float((want - got).abs().max()) < 1e-5


def test_fused_branches_block_equals_plain_block():
  import fused_branches  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.nn import layers  # pylint: disable=g-import-not-at-top

  x = _uniform(0, (2, 8, 8, 5))
  # The masked (ed_masks) form exercises the branch masks too; decode differs only after the convs.
  plain = layers.ConvBlock(4, ed_mask=True)
  fused = fused_branches.FusedConvBlock(4, ed_mask=True)
  variables = plain.init(jax.random.key(1, impl="rbg"), x, train=False)
  # Same parameter tree, so checkpoints and the optimiser's masks carry over unchanged.
  fused_vars = fused.init(jax.random.key(1, impl="rbg"), x, train=False)
  assert jax.tree.structure(variables) == jax.tree.structure(fused_vars)

  def loss_and_grads(module):
    # Train-mode BatchNorm: the fused block must also give the same batch statistics and gradients.
    def loss(v):
      y, upd = module.apply(v, x, train=True, mutable=["batch_stats"])
      return jnp.sum(y**2), (y, upd)

    return jax.jit(jax.value_and_grad(loss, has_aux=True))(variables)

  (_, (y_plain, stats_plain)), g_plain = loss_and_grads(plain)
  (_, (y_fused, stats_fused)), g_fused = loss_and_grads(fused)
  np.testing.assert_allclose(np.asarray(y_fused), np.asarray(y_plain), atol=1e-5, rtol=1e-5)
  for want, got in zip(jax.tree.leaves((stats_plain, g_plain)), jax.tree.leaves((stats_fused, g_fused))):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # compiles every stage twice
def test_gpu_checks_script_packs_each_stage_and_a_warm_cache_compiles_faster(tmp_path):
  """The prepared device script (benchmarks/gpu_checks.sh) in its CPU smoke mode, `speed` stage."""
  env = {
    **os.environ,
    "OUT": str(tmp_path / "out"),
    "GPU_CHECKS_SMOKE": "1",
    "PYTHON": sys.executable,
    "GPU_CHECKS_CACHE": str(tmp_path / "cache"),
  }
  script = os.path.join(BENCH, "gpu_checks.sh")
  bad = subprocess.run(["bash", script, "no_such_stage"], env=env, capture_output=True, text=True, timeout=60)
  assert bad.returncode == 2 and "unknown stage no_such_stage" in bad.stdout
  proc = subprocess.run(["bash", script, "speed"], env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with tarfile.open(tmp_path / "out" / "gpu_checks.tar.gz") as tar:
    names = set(tar.getnames())
    reports = {s: json.load(tar.extractfile(f"gpu_checks/model_speed_{s}.json")) for s in ("cold", "warm")}
  assert {"gpu_checks/log.txt", "gpu_checks/versions.txt"} <= names
  for report in reports.values():
    assert report["batch"] == 4 and report["image_size"] == 32 and report["train"]["clips_per_s"] > 0
  assert reports["cold"]["streaming"]["frames_per_s"] > 0
  with tarfile.open(tmp_path / "out" / "profile.tar.gz") as tar:  # the warm run's trace, in its own archive
    assert any(n.endswith(".xplane.pb") for n in tar.getnames())
    tar.extractall(tmp_path / "trace", filter="data")
  import trace_summary  # pylint: disable=g-import-not-at-top

  summary = trace_summary.summarize(trace_summary.find_trace(str(tmp_path / "trace")), top=50, steps=3)
  host = summary["processes"]["/host:CPU"]
  assert all(0 < busy <= host["span_ms"] for busy in host["busy_ms_per_stream"].values())
  runs = [op for op in host["top_ops"] if op["op"].startswith("$model_speed.py") and op["op"].endswith(" run")]
  assert [op["count"] for op in runs] == [3]  # the three traced train steps
  # The second run finds the first one's executables in the persistent cache.
  assert reports["warm"]["train"]["compile_s"] < reports["cold"]["train"]["compile_s"] / 3


@pytest.mark.slow  # trains the PyTorch twin end to end
def test_torch_train_trains_the_twin_and_scores_its_import_with_the_jax_evaluation(tmp_path):
  """benchmarks/torch_train.py end to end: 3 published-loop steps, import, JAX evaluation."""
  torch = pytest.importorskip("torch")
  import tiny_run  # pylint: disable=g-import-not-at-top
  import torch_twin  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top

  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=2, num_test=1, frames=12)
  work = tmp_path / "work"
  # configs/ped2.py (RGB: grey frames replicated, as the published loader does) at the tiny size.
  flags = [
    f"--config={os.path.join(ROOT, 'configs', 'ped2.py')}",
    "--config.data.name=generic",
    f"--config.data.root={root}",
    "--config.data.image_size=(32,32)",
    "--config.data.cache_dir=",
    "--config.model.latent_dim=16",
    "--config.model.masked_kernels=frozen",
    "--config.train.batch_size=4",
    "--config.train.num_steps=3",
    f"--config.train.compilation_cache_dir={tiny_run.JAX_CACHE}",
  ]
  proc = subprocess.run(
    [sys.executable, os.path.join(BENCH, "torch_train.py"), *flags, f"--workdir={work}"],
    cwd=ROOT,
    env=tiny_run.env(),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "step 3/3: loss" in proc.stdout
  report = json.loads((work / "eval" / "report.json").read_text())
  assert report["checkpoint_step"] == 3 and report["num_frames"] == 12 and report["channels"] == 3
  assert 0 <= report["frame_auc_micro"] <= 1
  record = json.loads((work / "torch_train.json").read_text())
  assert record["steps"] == 3 and np.isfinite(record["final_loss"]) and record["config"]["data.channels"] == 3

  state = torch.load(work / "torch.pt", weights_only=True)
  twin = torch_twin.Twin("maskedskip_unet", 16, 3, 3)
  twin.load_state_dict(state)
  twin.eval()
  # Frozen: masked-conv weights still equal their masked init (only biases moved), as in the published code.
  torch.manual_seed(0)
  init = torch_twin.Twin("maskedskip_unet", 16, 3, 3).state_dict()
  assert torch.equal(state["mconv1.conv.weight"], init["mconv1.conv.weight"] * init["mconv1.filter_mask"])
  assert not torch.equal(state["mconv1.conv.bias"], init["mconv1.conv.bias"])
  model, variables, _ = bundle.load(str(work / "bundle"), expect_variant="maskedskip_unet")
  x = _uniform(3, (2, 3, 32, 32, 3))  # (B, T, H, W, C)
  got = np.asarray(jax.jit(model.apply)(variables, x))
  with torch.no_grad():
    want = twin(torch.from_numpy(np.asarray(x).transpose(0, 4, 1, 2, 3).copy())).numpy().transpose(0, 2, 3, 1)
  assert want.std() > 1e-3 and np.abs(got - want).max() < 1e-4


def test_score_variants_reports_every_variant_and_patch16_is_the_evaluations_score(tmp_path):
  """benchmarks/score_variants.py on a tiny trained run: every variant, and patch16 = --mode=eval's AUCs."""
  import tiny_run  # pylint: disable=g-import-not-at-top

  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=2, num_test=2, frames=20)
  work, out = tmp_path / "work", tmp_path / "variants.json"
  # The reconstruction score alone (synthetic.py's hybrid off), so report.json's headline is what patch16 is.
  flags = tiny_run.overrides(root, **{"eval.hybrid_beta": 0.0})
  trained = tiny_run.run_main(str(work), flags, mode="train_and_eval", timeout=300)
  assert trained.returncode == 0, trained.stderr[-3000:]
  proc = subprocess.run(
    [
      sys.executable,
      os.path.join(BENCH, "score_variants.py"),
      "--config=configs/synthetic.py",
      f"--workdir={work}",
      f"--json={out}",
      *flags,
    ],
    cwd=ROOT,
    env=tiny_run.env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(out.read_text())
  # Spelled out, not imported: the script defines absl flags that main.py, imported by other tests, also defines.
  names = (
    [f"patch{p}" for p in (8, 16, 24, 32)]
    + [f"{v}_p{p}" for p in (16, 32) for v in ("minus_mean", "div_mean", "pixel_z")]
    + [f"patch_z_p{p}" for p in (16, 32)]
  )
  assert set(record["variants"]) == set(names)
  assert record["train_frames"] == 40 and record["test_frames"] == 40 and record["checkpoint_step"] == 6
  assert not list(tmp_path.glob("variants.json.tmp-*"))  # written by temp + rename
  for name in names:
    assert f"| {name} |" in proc.stdout
    for post in ("none", "median:window=17"):
      r = record["variants"][name][post]
      assert 0 <= r["frame_auc_micro"] <= 1 and 0 <= r["frame_auc_macro"] <= 1 and len(r["per_video_auc"]) == 2
  report = json.loads((work / "eval" / "report.json").read_text())
  rows = {row["postprocess"]: row for row in report["postprocess_table"]}
  for post in ("none", "median:window=17"):
    for key in ("frame_auc_micro", "frame_auc_macro"):
      assert record["variants"]["patch16"][post][key] == rows[post][key], (post, key)
  # synthetic.py's headline post-processing is the 17-frame median: the per-video AUCs are that row's.
  assert report["postprocess"] == "median:window=17"
  assert record["variants"]["patch16"]["median:window=17"]["per_video_auc"] == report["per_video_auc"]


@pytest.mark.slow  # compiles the paper-size network three times
def test_aed_mae_size_reports_every_setting():
  out = subprocess.run(
    [sys.executable, os.path.join(ROOT, "benchmarks", "aed_mae_size.py")], capture_output=True, text=True, check=True
  )
  doc = json.loads(out.stdout)
  assert [r["setting"] for r in doc["rows"]] == ["avenue", "shanghaitech", "ped2"]
  assert all(r["params"] > 1_000_000 and r["gflops_per_frame"] > 0 for r in doc["rows"])


@pytest.mark.slow  # compiles the paper-size network twice
def test_aed_mae_speed_scores_every_frame_of_its_video():
  out = subprocess.run(
    [sys.executable, os.path.join(ROOT, "benchmarks", "aed_mae_speed.py"), "--setting=ped2", "--frames=9", "--batch=4"],
    capture_output=True,
    text=True,
    check=True,
  )
  doc = json.loads(out.stdout)
  assert doc["frames_scored"] == 9 and doc["frame"] == [80, 160] and doc["patch"] == 4
  assert doc["masking"] == "cover"
  assert doc["forward_frames_per_s"] > 0 and doc["end_to_end_frames_per_s"] > 0
