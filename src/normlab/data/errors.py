"""The data layer's errors.  Each message is one line: what went wrong, where, and what to do."""

from __future__ import annotations

from pathlib import Path


class DataError(RuntimeError):
    """Base class of the data layer's errors; the message says what went wrong and what to do."""


class ChecksumError(DataError):
    pass


class FetchError(DataError):
    pass


class MissingClientError(FetchError):
    pass


class ParseError(DataError):
    """A source file is not in the expected format.  The message names the file and the line."""

    def __init__(self, path: Path | str, line: int | None, problem: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class UnknownNameError(DataError, KeyError):
    """An unknown dataset or split name.  A KeyError too (callers catch that), printed without
    the quotes KeyError puts around its message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
