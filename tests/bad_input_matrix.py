"""The bad-input matrix of tests/fault/test_bad_input.py: each mistake a user can make, set up and run.

Every case runs the real command line (`python -m maskedskip_jax.main|predict|convert_torch|
reconstruct`) in a subprocess; the test checks exit code 1, exactly one `error:` line on stderr that
names the offending file or config key (and what was wrong), no Python traceback, and no output
left behind, not even a temporary folder. The processes run concurrently, and the `python -m` ones
are forked from one process that has imported the libraries (tests/forked_cli.py): most of their
time would be interpreter and JAX start-up.
"""

import concurrent.futures
import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys

from fault import broken_inputs as broken
from fault import tiny_training as tt
import forked_cli
import tiny_run

# Bytes a file may grow to in the disk-full case: metrics lines fit, checkpoint arrays do not.
FILE_SIZE_LIMIT = 100_000


@dataclasses.dataclass
class Case:
  argv: list
  fragments: tuple  # the error line contains each
  absent: tuple = ()  # paths that must not exist afterwards
  no_files: tuple = ()  # folders that may exist (the run checks them early) but hold no file
  unchanged: str | None = None  # a folder whose entries must stay as they were
  before: list | None = None
  rc: int | None = None
  stderr: str = ""


def _main(workdir, dataset, mode="train", **overrides):
  return tiny_run.main_command(workdir, tt.flags(dataset, **overrides), mode)


def _module(name, *args):
  return [sys.executable, "-m", f"maskedskip_jax.{name}", *map(str, args)]


def _file_size_limited(argv, limit):
  """`python -m module ...` with every write past `limit` bytes failing (EFBIG), like a full disk."""
  code = (
    "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
    "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
  )
  return [sys.executable, "-c", code, *argv[2:]]


def _unwritable_workdir(root):
  if os.geteuid() != 0:
    locked = os.path.join(root, "read_only")
    os.makedirs(locked)
    os.chmod(locked, 0o500)
    return os.path.join(locked, "run")
  # root ignores permission bits; sysfs refuses new folders even to root.
  return "/sys/maskedskip_fault_test/run" if os.path.isdir("/sys/kernel") else None


def _cases(root, dataset, reference, nan_overrides):  # pylint: disable=too-many-locals
  j = lambda *p: os.path.join(root, *p)  # pylint: disable=unnecessary-lambda-assignment
  cases = {}

  def train_on(name, built, data_name="generic"):
    data_root, bad = built
    cases[name] = Case(_main(j("w_" + name), data_root, data__name=data_name), (bad,), no_files=(j("w_" + name),))

  cases["missing_dataset_root"] = Case(
    _main(j("w_missing"), j("no_such_data")), (j("no_such_data"), "not found"), no_files=(j("w_missing"),)
  )
  train_on("empty_video_folder", broken.empty_video_folder(j("empty")))
  train_on("corrupt_tiff_mid_video", broken.corrupt_tiff(j("tiff")), "ucsd_ped2")
  train_on("truncated_jpeg_mid_video", broken.truncated_jpeg(j("jpeg")))
  train_on("truncated_avi", broken.truncated_container(j("avi"), ".avi"))
  train_on("truncated_mp4", broken.truncated_container(j("mp4"), ".mp4"))
  # Ground truth is read by evaluation, here of a copy of the reference run.
  for name, (data_root, bad), data_name in (
    ("ground_truth_length", broken.short_labels(j("labels")), "generic"),
    ("m_file_range_past_end", broken.m_range_past_end(j("m")), "ucsd_ped2"),
  ):
    workdir = j("w_" + name)
    shutil.copytree(reference.workdir, workdir)
    cases[name] = Case(_main(workdir, data_root, "eval", data__name=data_name), (bad,), unchanged=workdir)

  for name, override, fragments in (
    ("unknown_dataset_name", {"data__name": "ucsd_ped3"}, ("data.name", "ucsd_ped2", "'ucsd_ped3'")),
    ("unknown_config_key", {"train__learning_rat": 0.1}, ("train.learning_rat", "train.learning_rate")),
    ("wrong_value_type", {"train__batch_size": "four"}, ("train.batch_size", "expected int", "'four'")),
    ("image_size_not_divisible_by_16", {"data__image_size": (40, 40)}, ("data.image_size", "multiples of 16")),
    ("even_temporal", {"model__temporal": 4}, ("model.temporal", "odd", "4")),
  ):
    cases[name] = Case(_main(j("w_" + name), dataset, **override), fragments, no_files=(j("w_" + name),))

  a_file = j("a_file")
  with open(a_file, "w") as f:
    f.write("not a folder\n")
  cases["workdir_inside_a_file"] = Case(_main(os.path.join(a_file, "run"), dataset), (a_file,))
  locked = _unwritable_workdir(root)
  if locked:
    cases["workdir_not_writable"] = Case(_main(locked, dataset), (locked, "writable"), no_files=(locked,))
  full = j("w_disk_full")
  cases["disk_full_while_checkpointing"] = Case(
    _file_size_limited(_main(full, dataset), FILE_SIZE_LIMIT), (os.path.join(full, "checkpoints"), "File too large")
  )
  nan = j("w_nan")
  cases["nan_loss"] = Case(
    _main(nan, dataset, **nan_overrides), ("training diverged at step", os.path.join(nan, "checkpoints"), "is intact")
  )

  model = broken.bundle(j("bundle"))
  clip = broken.short_video(j("clip.mp4"), 6)

  def predict(name, model_dir, video, fragments, absent=()):
    os.makedirs(j("outs_" + name))
    argv = _module("predict", "--model", model_dir, "--video", video, "--out", j("outs_" + name, "out"), "--no-overlay")
    cases[name] = Case(argv, fragments, absent, unchanged=j("outs_" + name))

  short = broken.short_video(j("short.mp4"), 2)
  predict("predict_video_shorter_than_t", model, short, (short, "T=3"))
  notes = broken.not_a_video(j("notes.mp4"))
  predict("predict_non_video_file", model, notes, (notes, "not a readable video"))
  _, params = broken.tampered_bundle(model, j("tampered"))
  predict("tampered_bundle", j("tampered"), clip, (params, "sha256"))
  _, params = broken.truncated_bundle(model, j("truncated"))
  predict("truncated_bundle", j("truncated"), clip, (params, "truncated"))
  _, params = broken.pickled_bundle(model, j("pickled"), j("RAN_bundle_pickle"))
  predict("pickle_as_bundle_params", j("pickled"), clip, (params,), (j("RAN_bundle_pickle"),))

  def convert(name, checkpoint, fragments, absent=()):
    os.makedirs(j("outs_" + name))
    argv = _module(
      "convert_torch",
      "--checkpoint",
      checkpoint,
      "--variant",
      "maskedskip_unet",
      "--latent-dim",
      8,
      "--channels",
      1,
      "--out",
      j("outs_" + name, "bundle"),
    )
    cases[name] = Case(argv, fragments, absent, unchanged=j("outs_" + name))

  if importlib.util.find_spec("torch") is not None:  # the [torch] extra; CI installs it
    _, missing, extra = broken.torch_state_dict(j("keys.pt"))
    convert("torch_checkpoint_missing_and_extra_keys", j("keys.pt"), ("missing", missing, "unexpected", extra))
    evil = broken.torch_pickle_with_code(j("evil.pt"), j("RAN_torch_pickle"))
    convert("pickle_as_torch_weights", evil, (evil, "refused"), (j("RAN_torch_pickle"),))
  os.makedirs(j("outs_npy"))
  evil = broken.pickled_npy(j("evil.npy"), j("RAN_npy_pickle"))
  cases["pickle_as_clips_npy"] = Case(
    _module("reconstruct", "--model", model, "--input", evil, "--output", j("outs_npy", "recon.npy")),
    (evil, "not a plain .npy"),
    (j("RAN_npy_pickle"),),
    unchanged=j("outs_npy"),
  )
  for case in cases.values():
    case.before = sorted(os.listdir(case.unchanged)) if case.unchanged else None
  return cases


def _run(case):
  proc = subprocess.run(
    case.argv, cwd=tiny_run.REPO, env=tiny_run.env(), capture_output=True, text=True, timeout=600, check=False
  )
  case.rc, case.stderr = proc.returncode, proc.stderr


@dataclasses.dataclass
class Matrix:
  root: str
  cases: dict


def run(root, dataset, reference, nan_overrides):
  """Sets up every case under `root` and runs them: {"root", "cases": {name: the Case as a dict}}.

  `nan_overrides`: the config overrides of the `nan_loss` case, a run whose loss blows up.
  """
  cases = _cases(root, dataset, reference, nan_overrides)
  # The `python -m` command lines, the slow one first, run forked (tests/forked_cli.py); meanwhile the others (the
  # disk-full wrapper) run as they are.
  forked = sorted((n for n, c in cases.items() if c.argv[1] == "-m"), key=lambda n: n != "nan_loss")
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    others = [pool.submit(_run, c) for n, c in cases.items() if n not in forked]
    results = forked_cli.run([(cases[n].argv[2], cases[n].argv[3:]) for n in forked], os.path.join(root, "logs"), 3)
    for done in others:
      done.result()
  for name, result in zip(forked, results):
    cases[name].rc, cases[name].stderr = result["rc"], result["stderr"]
  return {"root": root, "cases": {name: dataclasses.asdict(case) for name, case in cases.items()}}
