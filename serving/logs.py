"""JSON logs (or plain text), the same for the server's and uvicorn's loggers."""

from __future__ import annotations

from typing import Any


def log_config(level: str = "info", fmt: str = "json", access_log: bool = False) -> dict[str, Any]:
    formatter = (
        {"()": "pythonjsonlogger.json.JsonFormatter",
         "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"}}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "stream": "ext://sys.stderr"}},
        "loggers": {
            "serving": {"level": level},
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"level": "INFO" if access_log else "WARNING"},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
