"""The pack as Pulumi runs it: ``python -m pulumi.policy`` on policies/ in a child process (the
analyzer blocks serving gRPC), asked over gRPC what it holds and what it finds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.registry import all_rules
from tests.policies.fixtures import RDS_INSTANCE, mutate, rds_instance

PACK = Path(__file__).resolve().parents[2] / "policies"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # What the engine hands a pack: the stack's config and identity.
    env = dict(os.environ, PULUMI_CONFIG=json.dumps({"aiinfra:environment": "dev"}),
               PULUMI_PROJECT="aiinfra", PULUMI_STACK="dev", PULUMI_DRY_RUN="true")
    process = subprocess.Popen([sys.executable, "-m", "pulumi.policy", "127.0.0.1:0", str(PACK)],
                               cwd=PACK, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = process.stdout.readline().decode().strip()
        assert port.isdigit(), process.stderr.read().decode()[-2000:]
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_pack_serves_every_rule_at_the_stacks_levels(analyzer) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "aiinfra"
    assert sorted(p.name for p in info.policies) == [r.name for r in all_rules()]
    levels = {name: config.enforcementLevel for name, config in info.initialConfig.items()}
    assert levels["aws-s3-bucket-block-public-access"] == analyzer_pb2.MANDATORY
    assert levels["aws-eks-nodegroup-require-imdsv2"] == analyzer_pb2.ADVISORY


def test_the_pack_reports_a_resources_violations(analyzer) -> None:
    props = struct_pb2.Struct()
    props.update(mutate(rds_instance(), "storageEncrypted", False))
    response = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
        type=RDS_INSTANCE, properties=props, name="db",
        urn=f"urn:pulumi:dev::aiinfra::{RDS_INSTANCE}::db"))
    found = {d.policyName: d.message for d in response.diagnostics}
    # The fixture is tagged env=prod, which the dev stack reports too.
    assert set(found) == {"aws-rds-instance-enable-storage-encryption",
                          "aws-resource-require-cost-allocation-tags"}
    assert "RDS instance db stores data unencrypted" in found[
        "aws-rds-instance-enable-storage-encryption"]
    # dev: prod-only rules say so instead of passing silently.
    assert "aws-rds-instance-enable-multi-az" in {n.policy_name for n in response.not_applicable}
