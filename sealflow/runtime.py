"""Logging to the rule's log file: the one helper every stage script uses."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(log_file: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to the rule's ``log:`` file (and stderr), so every job leaves a readable trace."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log = logging.getLogger("sealflow")

    def log_uncaught(kind, error, trace) -> None:
        # The rule's log file, not only the job's stderr, must say why a job failed.
        log.critical("%s: %s", kind.__name__, error, exc_info=(kind, error, trace))

    sys.excepthook = log_uncaught
    return log



class collect_warnings(logging.Handler):
    """Within ``with collect_warnings("sealflow.knowledge.data") as seen:``, ``seen.messages``
    gathers that logger's warnings, so a stage can record in an artifact's meta what was dropped."""

    def __init__(self, logger: str):
        super().__init__(level=logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> "collect_warnings":
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
