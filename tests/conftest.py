"""Fixtures shared by every test package: they live in ``tests/support``."""

from tests.support.models import demo_repository, scale_repository
from tests.support.servers import start_server
from tests.support.services import database_url, postgres, redis_server, redis_url

__all__ = ["database_url", "demo_repository", "postgres", "redis_server", "redis_url",
           "scale_repository", "start_server"]
