"""The speed benchmarks and the device script's speed stage run at a tiny size (all slow) and report sane JSON."""

import json
import os
import subprocess
import sys
import tarfile

from benchmark_scripts import BENCH
import jax
import numpy as np
import pytest

TINY = ["--latent-dim", "8", "--image-size", "32", "--batch", "2", "--steps", "2", "--warmup", "0"]


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
