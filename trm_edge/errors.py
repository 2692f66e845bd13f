"""The one exception type users see: a message that says what is wrong and what to do."""


class TrmEdgeError(Exception):
    """Bad input or an unmet requirement, explained for a person (the CLI prints it without a traceback)."""


class CheckpointError(TrmEdgeError):
    """A file that is not a usable trm-edge or official checkpoint."""


class ConfigError(TrmEdgeError):
    """A model configuration that is incomplete, inconsistent or unsupported."""


class TrmEdgeWarning(UserWarning):
    """Something a user should know that does not stop the work: the message says why and what to
    do (the CLI prints each as one `note:` line)."""


class PassedOverWarning(TrmEdgeWarning):
    """`auto` passed over a backend or precision that might have been faster."""


class TaskCodecWarning(TrmEdgeWarning):
    """An export's task has no codec here: it runs on raw tokens, without text puzzles or verified halting."""
