"""The errors aecore raises on purpose; the CLI prints them in one line."""


class AecoreError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class DataError(AecoreError):
    """Fashion-MNIST files are missing, unreadable or corrupt."""


class TrainingError(AecoreError):
    """Training diverged (NaN or infinite loss) or was misconfigured."""


class ConfigError(AecoreError, ValueError):
    """An option has an invalid value."""
