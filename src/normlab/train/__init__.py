"""The training engine: ``train(config, out_dir, resume=False)``; ``normlab train`` on the command line."""

from .config import ConfigError, validate
from .engine import OutputExistsError, train
from .tasks import TaskData, synthetic_task

__all__ = ["ConfigError", "OutputExistsError", "TaskData", "synthetic_task", "train", "validate"]
