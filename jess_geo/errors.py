"""One error hierarchy for jess-geo: every message is one sentence saying what is wrong and how to fix it."""


class JessGeoError(Exception):
    """Root of all jess-geo errors."""


class InputError(JessGeoError, ValueError):
    """Bad user input: a missing or unreadable file, a wrong value or flag."""


class ModelFileError(JessGeoError, ValueError):
    """A model file that is missing, truncated, carries pickled objects or is not a jess-geo model."""


class OutputError(JessGeoError, OSError):
    """An output that exists already, cannot be written, or would overwrite an input."""


class ConfigError(JessGeoError, ValueError):
    """An invalid training or inference configuration."""


class Cancelled(JessGeoError):
    """The work was cancelled (SIGINT/SIGTERM or a cancel callback)."""
