"""Command-line plumbing shared by `main`, `ablate` and the benchmark scripts.

Every entry point built on absl gets the same `--config`, `--workdir` and multi-process flags, the same check of
`--config.key=value` overrides (ml_collections applies them while the flag is being defined, where an unknown key
would surface as a traceback), and the same rule for errors a user can cause: one `error:` line, exit code 1.
"""

import argparse
from collections.abc import Callable
import logging as std_logging
import os
import re
import sys

from absl import app as absl_app
from absl import flags
from absl import logging
from ml_collections import config_flags

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError

EXIT_PREEMPTED = 143  # 128 + SIGTERM: the job stopped early but cleanly; rerun to resume
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "synthetic.py")

WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (checkpoints, metrics, eval); default runs/<config>.")
COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
_config_flag = None  # set by run(): config_flags reads the file and the overrides when the flag is defined


def report_errors(work: Callable[[], str]) -> int:
  """Runs `work`, which returns the line to print on success; exit code 0, or 1 with one `error:` line."""
  try:
    line = work()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(line)
  return 0


def argument_parser(name: str, work_module) -> argparse.ArgumentParser:
  """The parser of `python -m maskedskip_jax.<name>`, described by the first line of the module doing the work."""
  return argparse.ArgumentParser(
    prog=f"python -m maskedskip_jax.{name}", description=work_module.__doc__.split("\n")[0]
  )


def fail(message) -> None:
  """Prints `error: <message>` and exits with code 1."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def override_key(arg: str) -> str | None:
  """'train.batch_size' for '--config.train.batch_size=8' (or '--noconfig.x', '-config.x v'); else None."""
  name = arg.lstrip("-").split("=", 1)[0]
  for prefix in ("config.", "noconfig."):
    if arg.startswith("-") and name.startswith(prefix):
      return name[len(prefix) :]
  return None


def unknown_override(argv: list[str]) -> str | None:
  """The one-line message for the first unknown --config.key of a command line (argv[0] is the program)."""
  for arg in argv[1:]:
    if arg == "--":
      break
    key = override_key(arg)
    if key is not None and not validation.is_known_key(key):
      return validation.unknown_key_message(key)
  return None


def exit_on_unknown_override(argv: list[str]) -> None:
  """Exits with one line and code 1 when argv has an unknown --config.key."""
  message = unknown_override(argv)
  if message:
    fail(message)


def define_config_flag(argv: list[str], default: str = DEFAULT_CONFIG):
  """Defines --config after checking argv's overrides; returns the flag holder."""
  exit_on_unknown_override(argv)
  try:
    return config_flags.DEFINE_config_file(
      "config", default, "Config file (configs/*.py); override keys with --config.train.batch_size=8.", lock_config=True
    )
  except Exception as e:  # pylint: disable=broad-except
    fail(f"--config: {type(e).__name__}: {' '.join(str(e).split())}")


def _flag_error_message(message: str) -> str:
  """absl's 'flag --config.k=v: <python error>' -> 'config key k: expected <type>, got v'."""
  match = re.match(r"flag --config\.([\w.]+)=(.*?): ", message)
  if match and match.group(1) in config_lib.SCHEMA:
    key, value = match.groups()
    return f"config key {key}: expected {validation.expected_type(key)}, got {value!r}"
  return message


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with config mistakes as one line and exit code 1."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(_flag_error_message(str(e).splitlines()[0]))
  except Exception as e:  # pylint: disable=broad-except
    # config_flags raises plain Python errors for a config file that does not load.
    fail(f"--config: {type(e).__name__}: {' '.join(str(e).split())}")
  return []


def config_name() -> str:
  """The --config file's name without folder and extension: 'ped2' for configs/ped2.py."""
  path = config_flags.get_config_filename(flags.FLAGS["config"])
  return os.path.splitext(os.path.basename(path.split(":")[0]))[0]


def load_config(holder=None):
  """The parsed --config (of `holder`, default run()'s), checked; a missing or broken file is a UserError."""
  holder = holder if holder is not None else _config_flag
  path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
  if not os.path.isfile(path):
    raise UserError(f"--config: {path} not found; expected a config file such as configs/synthetic.py")
  config = holder.value
  try:
    config_lib.flatten(config)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"--config: {path} did not load: {type(e).__name__}: {' '.join(str(e).split())}") from None
  # ml_collections has already set the overrides; setting them again through with_values applies its rules, e.g.
  # `--config.data.image_size=128` (parsed as (128,)) means a 128x128 square.
  config = config_lib.with_values(config, config_flags.get_override_values(flags.FLAGS["config"]))
  validation.validate(config)
  return config


def initialize_processes() -> None:
  """jax.distributed from the launcher's environment or the --coordinator_address/... flags."""
  from maskedskip_jax.train import sharding  # pylint: disable=g-import-not-at-top

  sharding.initialize(COORDINATOR.value, NUM_PROCESSES.value, PROCESS_ID.value)


class _NoLibraryTracebacks:
  """Orbax logs its background-thread failures with tracebacks; ours is the one line that matters."""

  def filter(self, record) -> bool:
    if any(f"{os.sep}{name}{os.sep}" in record.pathname for name in ("orbax", "asyncio")):
      record.exc_info, record.exc_text = None, None
    return True


def quiet_logs(level: int = logging.ERROR) -> None:
  """Library INFO/WARNING chatter off unless --verbosity was given; no library tracebacks for our errors."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(level)
  for logger in (logging.get_absl_logger(), std_logging.getLogger("asyncio")):
    logger.addFilter(_NoLibraryTracebacks())


def script_workdir(argv: list[str]) -> str:
  """The start of a config-driven script's absl main: logs quieted, no stray arguments, --workdir required and
  returned absolute (a UsageError otherwise, which absl prints with the usage)."""
  quiet_logs()
  if len(argv) > 1:
    raise absl_app.UsageError(f"unexpected arguments {' '.join(argv[1:])}")
  if not WORKDIR.value:
    raise absl_app.UsageError("--workdir is required")
  return os.path.abspath(os.path.expanduser(WORKDIR.value))


def run(main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
  """Runs an absl `main` under --config (configs/synthetic.py by default): every absl entry point's cli()."""
  argv = list(sys.argv if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  global _config_flag
  _config_flag = define_config_flag(argv)
  absl_app.run(main, argv=argv, flags_parser=parse_flags)
