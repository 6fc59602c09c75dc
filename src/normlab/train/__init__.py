"""The training engine: ``train(config, out_dir, resume=False)``; ``normlab train`` on the command line.

``load_run(run_dir)`` reads a finished run back (config, data, model with its last weights, batches)
for post-hoc tools.  Task families are classes in ``normlab.train.families`` (registry ``FAMILIES``).
"""

from .config import validate
from .engine import train
from .errors import ConfigError, OutputExistsError, RunLockedError, RunStateError
from .examples import TaskData
from .runs import LoadedRun, load_run
from .tasks import synthetic_task

__all__ = [
    "ConfigError",
    "LoadedRun",
    "OutputExistsError",
    "RunLockedError",
    "RunStateError",
    "TaskData",
    "load_run",
    "synthetic_task",
    "train",
    "validate",
]
