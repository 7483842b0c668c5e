"""The CrossGuard pack: ``pulumi preview --policy-pack policies``. Only assembles the pack.

Pulumi runs this folder as a program (its own folder first on ``sys.path``); the rules import
as the ``policies`` package from the checkout, beside ``infra``.
"""

import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != PACK]
sys.path.insert(0, str(PACK.parent))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.crossguard import pack_arguments  # noqa: E402

PolicyPack(**pack_arguments())
