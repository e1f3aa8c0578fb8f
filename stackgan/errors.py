"""Exceptions that carry a message meant for the user (printed without a traceback)."""


class UserError(Exception):
    """Bad input from the user: a wrong option, an unusable data set, a mismatched checkpoint."""


class ConfigError(UserError):
    """A configuration value is out of range or inconsistent."""


class DataError(UserError):
    """A data set is missing, empty or unusable."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt or does not fit what was asked."""


class RunFolderInUse(ConfigError, CheckpointError):
    """Training was pointed at a run folder that holds checkpoints, without --resume."""


class ProjectWarning(UserWarning):
    """Something a user should know that does not stop the command (a skipped photo, an ignored
    option); the command line prints it as one ``warning: ...`` line on stderr."""
