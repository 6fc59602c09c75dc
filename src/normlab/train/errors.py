"""The errors of a training run that are the user's to fix: each message is one line naming the key or
file and the fix.  ``normlab train`` prints ``normlab train: <message>`` and exits 2 for them (and for
``normlab.data.DataError`` and ``normlab.atomic.WriteError``)."""

from __future__ import annotations


class ConfigError(ValueError):
    """A run config that cannot run; the message names the key and the valid values."""


class OutputExistsError(FileExistsError):
    """``--out`` holds files and ``--resume`` was not given."""


class RunLockedError(RuntimeError):
    """Another process is writing the run folder (it holds ``OUT/.lock``); the message names its PID."""


class RunStateError(RuntimeError):
    """A run folder's own files are damaged (a checkpoint that does not load, a metrics line that is not
    JSON); the message names the file and how to start the run afresh."""
