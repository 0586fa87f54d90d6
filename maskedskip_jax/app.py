"""Command-line plumbing shared by the package's entry points and the benchmark scripts.

`ml_collections.config_flags` applies `--config.key=value` overrides while the flag is being defined, and an
unknown key surfaces there as a traceback. Every command therefore checks its overrides against the config
schema first, so a typo is one line naming the key and the closest known ones.
"""

import sys

from maskedskip_jax import config_check


def override_key(arg: str) -> str | None:
  """'train.batch_size' for '--config.train.batch_size=8' (or '--noconfig.x', '-config.x v'); else None."""
  name = arg.lstrip("-").split("=", 1)[0]
  for prefix in ("config.", "noconfig."):
    if arg.startswith("-") and name.startswith(prefix):
      return name[len(prefix):]
  return None


def unknown_override(argv: list[str]) -> str | None:
  """The one-line message for the first unknown --config.key of a command line (argv[0] is the program)."""
  for arg in argv[1:]:
    if arg == "--":
      break
    key = override_key(arg)
    if key is not None and not config_check.is_known_key(key):
      return config_check.unknown_key_message(key)
  return None


def exit_on_unknown_override(argv: list[str]) -> None:
  """Prints `error: <message>` and exits with code 1 when argv has an unknown --config.key."""
  message = unknown_override(argv)
  if message:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
