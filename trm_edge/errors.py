"""The one exception type users see: a message that says what is wrong and what to do."""


class TrmEdgeError(Exception):
    """Bad input or an unmet requirement, explained for a person (the CLI prints it without a traceback)."""


class CheckpointError(TrmEdgeError):
    """A file that is not a usable trm-edge or official checkpoint."""


class ConfigError(TrmEdgeError):
    """A model configuration that is incomplete, inconsistent or unsupported."""


class PassedOverWarning(UserWarning):
    """`auto` passed over a backend or precision that might have been faster: the message says why
    and what to do (the CLI prints it as one `note:` line)."""
