"""The one error type for mistakes a user can make (bad input, bad config, bad files).

Command-line entry points catch it, print its one-line message and exit 1, so users never see a traceback for an
expected error. It lives here, at the bottom of the import graph, because the data pipeline raises it too;
`maskedskip_jax.errors` is the same class.
"""


class UserError(Exception):
  """A problem with the user's input, config or files; the message is one line."""

  def __init__(self, message: str):
    if "\n" in message:
      message = " ".join(message.split())
    super().__init__(message)
