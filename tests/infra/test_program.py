"""The program under mocks: what each stack builds, and the guarantees prod must keep."""

from __future__ import annotations

import asyncio
import json

import pytest

from infra.catalog import catalog
from infra.config import OPERATOR_SET
from infra.pgtune import pgtune, rds_parameters
from infra.preview import k8s_objects
from infra.render import render

STACKS = ["dev", "staging", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_graph_builds_with_every_concern(graphs, stack: str) -> None:
    graph = graphs[stack]
    components = {r.type for r in graph.resources if r.type.startswith("aiinfra:")}
    assert components == {"aiinfra:network:Network", "aiinfra:cluster:Cluster",
                          "aiinfra:nodes:NodePools", "aiinfra:gpu:GpuPlumbing",
                          "aiinfra:data:Postgres", "aiinfra:data:Redis",
                          "aiinfra:monitoring:Monitoring", "aiinfra:serving:Serving",
                          "aiinfra:admission:Admission"}
    names = {r.name for r in graph.resources}
    for resource in graph.resources:
        if not resource.type.startswith("aiinfra:"):
            assert resource.parent in names, resource.name


def gpu_node_pools(graph) -> dict[str, tuple[dict, dict]]:
    """Per pool: its NodePool spec and its EC2NodeClass spec."""
    classes = {r.inputs["metadata"]["name"]: r.inputs["spec"]
               for r in graph.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")}
    pools = {}
    for r in graph.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        spec = r.inputs["spec"]
        pool = spec["template"]["metadata"]["labels"]["aiinfra.io/pool"]
        pools[pool] = (spec, classes[spec["template"]["spec"]["nodeClassRef"]["name"]])
    return pools


def requirement(spec: dict, key: str) -> list[str]:
    (found,) = [r["values"] for r in spec["template"]["spec"]["requirements"] if r["key"] == key]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_pools_are_karpenter_node_pools_tainted_with_imdsv2_and_encrypted_disks(
        graphs, stack: str) -> None:
    graph = graphs[stack]
    pools = gpu_node_pools(graph)
    assert set(pools) == {p.name for p in graph.config.gpu_pools}
    assert graph.of_type("aws:eks/nodeGroup:NodeGroup")[0].name.endswith("-system")
    assert len(graph.of_type("aws:eks/nodeGroup:NodeGroup")) == 1  # GPU nodes: Karpenter's
    for config in graph.config.gpu_pools:
        spec, node_class = pools[config.name]
        template = spec["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in template[
            "taints"]
        assert requirement(spec, "node.kubernetes.io/instance-type") == config.instance_types
        for instance_type in config.instance_types:
            assert catalog().ec2[instance_type].gpus >= 1
        if config.capacity == "spot":
            assert requirement(spec, "karpenter.sh/capacity-type") == ["spot"]
            assert len(config.instance_types) >= 3
        assert spec["disruption"]["consolidationPolicy"] == "WhenEmpty"
        assert spec["limits"]["nvidia.com/gpu"] == str(config.max_nodes * config.gpus_per_node)
        assert node_class["metadataOptions"]["httpTokens"] == "required"
        assert node_class["metadataOptions"]["httpPutResponseHopLimit"] == 1
        (disk,) = node_class["blockDeviceMappings"]
        assert disk["ebs"] == {"volumeSize": f"{config.disk_gib}Gi", "volumeType": "gp3",
                               "encrypted": True, "deleteOnTermination": True}
        assert node_class["amiSelectorTerms"] == [{"alias": "al2023@latest"}]


def test_nat_gateways_per_az_in_prod_and_one_in_dev(graphs) -> None:
    assert len(graphs["prod"].of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(graphs["dev"].of_type("aws:ec2/natGateway:NatGateway")) == 1
    endpoints = {r.inputs["serviceName"] for r in
                 graphs["dev"].of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert {"com.amazonaws.us-east-1.s3", "com.amazonaws.us-east-1.ecr.api",
            "com.amazonaws.us-east-1.ecr.dkr"} <= endpoints


def test_prod_database_cluster_and_serving_guarantees(graphs) -> None:
    prod = graphs["prod"]
    (db,) = prod.of_type("aws:rds/instance:Instance")
    assert db.inputs["multiAz"] is True
    assert db.inputs["deletionProtection"] is True
    assert db.inputs["storageEncrypted"] is True
    assert db.inputs["publiclyAccessible"] is False
    assert db.inputs["backupRetentionPeriod"] >= 7
    assert db.inputs["performanceInsightsEnabled"] is True
    (cluster,) = prod.of_type("aws:eks/cluster:Cluster")
    # Public only to the deployer's networks, which the operator sets for the account.
    assert cluster.inputs["vpcConfig"]["endpointPublicAccess"] is True
    assert cluster.inputs["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster.inputs["vpcConfig"]["publicAccessCidrs"] == [OPERATOR_SET]
    assert cluster.inputs["encryptionConfig"]["resources"] == ["secrets"]
    assert "audit" in cluster.inputs["enabledClusterLogTypes"]
    (deployment,) = prod.of_type("kubernetes:apps/v1:Deployment")
    assert "replicas" not in deployment.inputs["spec"]  # the autoscaler's (review #8)
    assert not prod.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")  # KEDA's
    (scaler,) = prod.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")
    spec = scaler.inputs["spec"]
    assert spec["scaleTargetRef"]["name"] == deployment.inputs["metadata"]["name"]
    assert spec["minReplicaCount"] >= 2
    assert "aiinfra_queue_depth" in spec["triggers"][0]["metadata"]["query"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert prod.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    (redis,) = prod.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
    assert redis.inputs["atRestEncryptionEnabled"] is True
    assert redis.inputs["transitEncryptionEnabled"] is True
    assert redis.inputs["authToken"]
    assert redis.inputs["automaticFailoverEnabled"] is True
    assert redis.inputs["multiAzEnabled"] is True


def test_dev_is_cheaper_and_less_guarded(graphs) -> None:
    (db,) = graphs["dev"].of_type("aws:rds/instance:Instance")
    assert db.inputs["multiAz"] is False
    assert db.inputs["deletionProtection"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_parameter_group_equals_pgtune(graphs, stack: str) -> None:
    graph = graphs[stack]
    (group,) = graph.of_type("aws:rds/parameterGroup:ParameterGroup")
    database = graph.config.database
    spec = catalog().rds[database.instance_class]
    expected = [{"name": p.name, "value": p.value, "applyMethod": p.apply_method}
                for p in rds_parameters(pgtune(spec.vcpu, spec.memory_gib, database.workload))]
    actual = sorted(group.inputs["parameters"], key=lambda p: p["name"])
    assert actual == sorted(expected, key=lambda p: p["name"])


def test_reserved_pool_launches_into_its_capacity_reservation(graphs) -> None:
    prod = graphs["prod"]
    (reservation,) = prod.of_type("aws:ec2/capacityReservation:CapacityReservation")
    assert reservation.inputs["instanceType"] == "g6.2xlarge"
    assert reservation.inputs["instanceCount"] == 4
    spec, node_class = gpu_node_pools(prod)["l4-reserved"]
    assert node_class["capacityReservationSelectorTerms"] == [
        {"id": "aiinfra-prod-l4-reserved-odcr-id"}]
    # Reserved first; on-demand only when the reservation is full (a replacement node).
    assert requirement(spec, "karpenter.sh/capacity-type") == ["reserved", "on-demand"]
    assert requirement(spec, "topology.kubernetes.io/zone") == [
        reservation.inputs["availabilityZone"]]


def test_karpenter_fills_reserved_then_spot_then_on_demand(graphs) -> None:
    pools = gpu_node_pools(graphs["prod"])
    weights = {name: spec["weight"] for name, (spec, _) in pools.items()}
    assert weights == {"l4-reserved": 100, "l4-spot": 50, "l4-burst": 10}
    for spec, _ in pools.values():
        assert spec["disruption"]["consolidateAfter"] == "10m"  # the guide's delay


def test_karpenter_handles_interruptions_and_replaces_the_old_autoscaler(graphs) -> None:
    prod = graphs["prod"]
    releases = {r.inputs["name"]: r for r in prod.of_type("kubernetes:helm.sh/v3:Release")}
    assert "cluster-autoscaler" not in releases
    assert "aws-node-termination-handler" not in releases
    karpenter = releases["karpenter"]
    (queue,) = prod.of_type("aws:sqs/queue:Queue")
    assert karpenter.inputs["values"]["settings"]["interruptionQueue"] == queue.name
    rules = {json.dumps(json.loads(r.inputs["eventPattern"]), sort_keys=True)
             for r in prod.of_type("aws:cloudwatch/eventRule:EventRule")}
    for detail in ("EC2 Spot Instance Interruption Warning",
                   "EC2 Instance Rebalance Recommendation",
                   "EC2 Instance State-change Notification", "AWS Health Event"):
        assert any(detail in rule for rule in rules), detail
    (entry,) = prod.of_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["type"] == "EC2_LINUX"


def test_serving_pods_are_locked_down(graphs) -> None:
    (deployment,) = graphs["prod"].of_type("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    security = server["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["terminationGracePeriodSeconds"] > 30
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"]


def test_manifests_are_kubernetes_objects(graphs) -> None:
    objects = k8s_objects(graphs["dev"])
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ScaledObject", "PodDisruptionBudget",
            "NetworkPolicy", "Namespace", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert "HorizontalPodAutoscaler" not in kinds  # KEDA makes it in the cluster
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["apiVersion"] == "apps/v1"
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["apiVersion"] == "v1"
    json.dumps(objects)  # plain data all the way down


def test_image_is_built_from_the_repository_and_deployed_by_digest(graphs) -> None:
    prod = graphs["prod"]
    (image,) = prod.of_type("docker-build:index:Image")
    assert image.inputs["dockerfile"]["location"].endswith("image/Dockerfile")
    assert image.inputs["push"] is True
    assert len(image.inputs["buildArgs"]["REVISION"]) in (40, 7)  # a commit (or "unknown")
    assert ":0.1.0-" in image.inputs["tags"][0]  # the version, then the commit
    (deployment,) = prod.of_type("kubernetes:apps/v1:Deployment")
    (server,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert "@sha256:" in server["image"]
    (repository,) = prod.of_type("aws:ecr/repository:Repository")
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repository.inputs["imageScanningConfiguration"]["scanOnPush"] is True


def test_engines_live_on_a_shared_encrypted_volume(graphs) -> None:
    prod = graphs["prod"]
    (filesystem,) = prod.of_type("aws:efs/fileSystem:FileSystem")
    assert filesystem.inputs["encrypted"] is True
    assert len(prod.of_type("aws:efs/mountTarget:MountTarget")) == 3
    (claim,) = prod.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert claim.inputs["spec"]["accessModes"] == ["ReadWriteMany"]
    (deployment,) = prod.of_type("kubernetes:apps/v1:Deployment")
    volumes = {v["name"]: v for v in deployment.inputs["spec"]["template"]["spec"]["volumes"]}
    assert volumes["engines"]["persistentVolumeClaim"]["claimName"] == claim.inputs[
        "metadata"]["name"]


def test_graph_order_does_not_depend_on_output_resolution(graphs) -> None:
    # Resources register as their inputs resolve, in an order that varies between runs; the
    # graph (and so the preview table, its JSON and the manifests) is sorted.
    for graph in graphs.values():
        keys = [(r.type, r.name) for r in graph.resources]
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)


def test_renders_after_an_event_loop_was_run_and_closed() -> None:
    # asyncio.run (as an async test or a CLI command does) leaves the thread without a loop.
    asyncio.run(asyncio.sleep(0))
    assert render("dev").of_type("aws:eks/cluster:Cluster")
