"""``pulumi up -s dev|staging|prod``: read the stack's config once, then build the platform."""

from infra.config import read_pulumi_config
from infra.program import build

build(read_pulumi_config())
