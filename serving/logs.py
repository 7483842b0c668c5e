"""JSON logs (or plain text), the same for the server's and uvicorn's loggers."""

from __future__ import annotations

import logging
from typing import Any


class DropColorMessage(logging.Filter):
    """uvicorn attaches an ANSI-coloured copy of each message; JSON logs have no use for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def log_config(level: str = "info", fmt: str = "json", access_log: bool = False) -> dict[str, Any]:
    formatter = (
        {"()": "pythonjsonlogger.json.JsonFormatter",
         "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
         "datefmt": "%Y-%m-%dT%H:%M:%S%z",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"drop_color": {"()": DropColorMessage},
                    "trace_ids": {"()": "serving.tracing.TraceIds"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "filters": ["drop_color", "trace_ids"],
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "serving": {"level": level},
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"level": "INFO" if access_log else "WARNING"},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
