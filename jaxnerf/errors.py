"""Errors that report bad input or a failed run to the user; train.py and render.py print them without a
traceback. Each message names the file or config key at fault and what was expected."""


class DatasetError(ValueError):
  """A scene on disk is missing or not in the expected format."""


class ConfigError(ValueError):
  """A config value that cannot work (the key is named in the message)."""


class NonFiniteLossError(RuntimeError):
  """Training produced a non-finite loss or gradient."""


class CheckpointError(FileNotFoundError):
  """A workdir lacks the checkpoint or saved config that was asked for."""


class WorkdirError(RuntimeError):
  """A folder that a command would write to cannot be used: another run owns it, it is not writable, or it is
  a file."""


USER_ERRORS = (DatasetError, ConfigError, NonFiniteLossError, CheckpointError, WorkdirError)
