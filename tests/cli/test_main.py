"""The command line: config mistakes are one line on stderr and exit code 1, never a traceback.

Every command line runs `python -m maskedskip_jax.main` in a process of its own; they run together, once per test
session, forked from one process that has imported the libraries (tests/forked_cli.py).
"""

import os

import forked_cli
import pytest
import tiny_run

from maskedskip_jax import app as app_lib
from maskedskip_jax import main
from maskedskip_jax.errors import UserError

BAD = [
  (["--config.train.batch_sz=8"], ["unknown config key train.batch_sz", "did you mean train.batch_size"]),
  (["--config.train.batch_sz", "8"], ["unknown config key train.batch_sz"]),
  (["--noconfig.model.centre_onl"], ["unknown config key model.centre_onl"]),
  (["--config.train.batch_size=abc"], ["config key train.batch_size: expected int, got 'abc'"]),
  (["--config.train.learning_rate=fast"], ["config key train.learning_rate: expected float, got 'fast'"]),
  (["--config.data.image_size=(30,30)"], ["data.image_size", "multiples of 16"]),
  # One side alone is a square: 120 is refused as (120, 120); 128 passes every key, so the data.root rule,
  # checked after them, is what stops this run.
  (["--config.data.image_size=120"], ["config key data.image_size", "got (120, 120)"]),
  (["--config.data.image_size=128", "--config.data.name=ucsd_ped2"], ["config key data.root"]),
  (["--config.model.temporal=2"], ["model.temporal", "odd"]),
  (["--config.model.variant=resnet"], ["model.variant"]),
  (["--config.eval.baselines=frame_diff,optical_flow"], ["config key eval.baselines", "frame_diff, mog2, flow"]),
  (["--config=configs/no_such_config.py"], ["configs/no_such_config.py not found"]),
  (["--mode=serve"], ["--mode"]),
  (["stray"], ["unexpected arguments stray"]),
]


def _command_lines(folder):
  """name -> the arguments of `python -m maskedskip_jax.main`."""
  broken = os.path.join(folder, "broken.py")
  with open(broken, "w") as f:
    f.write("def get_config():\n  return 1 / 0\n")
  lines = {
    f"bad{i}": tiny_run.main_command(os.path.join(folder, f"run{i}"), args)[3:] for i, (args, _) in enumerate(BAD)
  }
  lines["default_config"] = ["--config.train.batch_sz=8"]  # no --config: the built-in default
  lines["broken_config_file"] = tiny_run.main_command("unused", [f"--config={broken}"])[3:]
  return lines


@pytest.fixture(scope="module")
def ran(run_once):
  def make(folder):
    names, lines = zip(*_command_lines(folder).items())
    results = forked_cli.run([("maskedskip_jax.main", line) for line in lines], os.path.join(folder, "logs"))
    return {"folder": folder, "results": dict(zip(names, results))}

  return run_once("main_command_lines", make)


def _one_line_error(result, *fragments):
  assert result["rc"] == 1, result["stderr"][-2000:]
  assert "Traceback" not in result["stderr"]
  lines = [line for line in result["stderr"].splitlines() if line.startswith("error: ")]
  assert len(lines) == 1, result["stderr"][-2000:]
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
  return lines[0]


@pytest.mark.parametrize("args, fragments", BAD)
def test_bad_command_lines_fail_with_one_line(args, fragments, ran):
  i = BAD.index((args, fragments))
  _one_line_error(ran["results"][f"bad{i}"], *fragments)
  assert not os.path.exists(os.path.join(ran["folder"], f"run{i}"))  # nothing written for a run that never started


def test_the_default_config_also_reports_unknown_keys_in_one_line(ran):
  _one_line_error(ran["results"]["default_config"], "unknown config key train.batch_sz")


def test_a_config_file_that_does_not_load_is_one_line(ran):
  _one_line_error(ran["results"]["broken_config_file"], "--config", "ZeroDivisionError")


def test_missing_mode_module_is_a_user_error():
  with pytest.raises(UserError, match="maskedskip_jax/no_such_mode.py"):
    main.mode_module("maskedskip_jax.no_such_mode")


def test_override_keys_are_recognised():
  assert app_lib.override_key("--config.train.batch_size=8") == "train.batch_size"
  assert app_lib.override_key("-config.train.seed") == "train.seed"
  assert app_lib.override_key("--noconfig.model.centre_only") == "model.centre_only"
  assert app_lib.override_key("--config=configs/ped2.py") is None
  assert app_lib.override_key("--workdir=config.x") is None
