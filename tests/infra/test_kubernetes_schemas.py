"""Every rendered Kubernetes object against the real schemas of the stack's cluster version.

Built-in kinds go through ``kubernetes-validate --strict`` (the Kubernetes OpenAPI schemas it
ships, one set per minor version): an unknown field, a wrong type or a missing required field
is an error here instead of a rejected ``pulumi up``.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from infra.preview import k8s_objects, write_manifests

STACKS = ["dev", "staging", "prod"]
# Groups whose kinds come from CRDs: validated against the vendored CRD schemas instead.
CUSTOM_GROUPS = ("monitoring.coreos.com", "karpenter.sh", "karpenter.k8s.aws", "keda.sh")


def kubernetes_version(graph) -> str:
    return f"{graph.config.cluster_version}.0"


def builtin_objects(graph) -> list[dict]:
    return [body for body in k8s_objects(graph)
            if body["apiVersion"].split("/")[0] not in CUSTOM_GROUPS]


@pytest.mark.parametrize("stack", STACKS)
def test_every_builtin_object_passes_strict_validation(graphs, stack: str) -> None:
    graph = graphs[stack]
    objects = builtin_objects(graph)
    assert len(objects) > 10
    errors = []
    for body in objects:
        try:
            kubernetes_validate.validate(body, kubernetes_version(graph), strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{body['kind']} {body['metadata'].get('name')}: {exc.message} at "
                          f"{'.'.join(str(p) for p in exc.path)}")
    assert errors == []


@pytest.mark.parametrize("stack", STACKS)
def test_written_manifests_carry_secrets_as_strings(graphs, stack: str, tmp_path) -> None:
    """`aiinfra preview --manifests` output goes to `kubectl diff` and linters as it is."""
    import yaml  # noqa: PLC0415

    for path in write_manifests(graphs[stack], tmp_path):
        body = yaml.safe_load(path.read_text())
        if body["kind"] == "Secret":
            for key, value in {**body.get("stringData", {}), **body.get("data", {})}.items():
                assert isinstance(value, str), (path.name, key)
                assert value == "[secret]", (path.name, key)


def test_the_secret_markers_are_the_sdks() -> None:
    from pulumi.runtime import rpc  # noqa: PLC0415

    from infra import render  # noqa: PLC0415

    markers = (render._SIG_KEY, render._SECRET_SIG)
    assert markers == (rpc._special_sig_key, rpc._special_secret_sig)
