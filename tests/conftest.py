"""Fixtures shared by every test package: they live in ``tests/support``."""

import os

# In-process servers (many per test run, in threads) serve HTTP only unless a test asks for
# gRPC with a port of its own; servers started as processes get a free gRPC port each
# (bench.process.start_server).
os.environ.setdefault("AIINFRA_GRPC", "false")

from tests.support.models import demo_repository, scale_repository
from tests.support.servers import start_server
from tests.support.services import database_url, postgres, redis_server, redis_url

__all__ = ["database_url", "demo_repository", "postgres", "redis_server", "redis_url",
           "scale_repository", "start_server"]
