"""The errors a user can meet. Each is phrased for the user: one line that names the file or key
and the fix. The CLI prints it as `sagan <command>: error: <message>` and exits with status 2
(`sagan --debug ...` shows the traceback instead)."""

from __future__ import annotations


class SaganError(Exception):
    """Base of every error the package raises for the user to act on."""


class ConfigError(SaganError, ValueError):
    """A configuration problem (a key, a value, a combination); says what is allowed."""


class DatasetError(SaganError, ValueError):
    """A problem with data on disk (a dataset, an archive, a split file); names the file and the fix."""


class TrainingError(SaganError, RuntimeError):
    """Training cannot go on (for example a non-finite loss); names the run and the iteration."""


class StorageError(SaganError, OSError):
    """A file cannot be written (disk full, over quota, a read-only folder); names the file."""
