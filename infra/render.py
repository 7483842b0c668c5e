"""The offline renderer: run the program under Pulumi's mocks and record the resource graph.

The graph (type token, name, parent, inputs) is the single input of ``aiinfra preview``,
``aiinfra cost`` and ``aiinfra check``. Provider-computed outputs the program reads (ids,
ARNs, endpoints) are filled with placeholders so every resource is registered.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from infra.config import PROJECT, StackConfig, parse_stack_config

STACKS = ("dev", "staging", "prod")
# Config secrets the program reads that only an operator holds (never in a stack file).
OPERATOR_SECRETS = ("alertReceiverUrl",)


def project_dir(start: Path | None = None) -> Path:
    """The folder holding ``Pulumi.yaml``: the working directory or the package's checkout."""
    for candidate in (start or Path.cwd(), Path(__file__).resolve().parent.parent):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    raise FileNotFoundError("no Pulumi.yaml here or beside the infra package: run from the "
                            "repository root or pass --project-dir")


def stack_values(stack: str, root: Path | None = None) -> dict[str, object]:
    """``aiinfra:*`` values for ``stack``: Pulumi.yaml defaults, then Pulumi.<stack>.yaml."""
    root = project_dir(root)
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(known)}")
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    values: dict[str, object] = {}
    for key, declaration in (project.get("config") or {}).items():
        if isinstance(declaration, dict) and "default" in declaration:
            values[key.removeprefix(f"{PROJECT}:")] = declaration["default"]
    stack_file = yaml.safe_load(path.read_text()) or {}
    for key, value in (stack_file.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name not in OPERATOR_SECRETS:
            values[name] = value
        elif key == "aws:region":
            values["region"] = value
    return values


def load_stack(stack: str, root: Path | None = None) -> StackConfig:
    return parse_stack_config(stack_values(stack, root), source=f"Pulumi.{stack}.yaml",
                              offline=True)


@dataclass
class Resource:
    type: str
    name: str
    parent: str | None
    inputs: dict
    urn: str = field(repr=False, default="")
    # Resource options as the engine sees them: the URNs this waits for (explicit
    # ``depends_on`` and the resources its inputs come from), ``ignore_changes`` paths and
    # ``custom_timeouts`` (create/update/delete). Not part of ``as_dict``, the preview's JSON.
    depends_on: list[str] = field(default_factory=list, repr=False)
    ignore_changes: list[str] = field(default_factory=list, repr=False)
    custom_timeouts: dict[str, str] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {"type": self.type, "name": self.name, "parent": self.parent,
                "inputs": self.inputs}


@dataclass
class Graph:
    stack: str
    config: StackConfig
    resources: list[Resource]
    # `aiinfra:` keys the account's operator sets that this render stood in for.
    stand_ins: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Resource:
        return next(r for r in self.resources if r.name == name)

    def waits_for(self, resource: Resource) -> list[Resource]:
        """Every resource that ``resource`` waits for, directly or through others."""
        by_urn = {r.urn: r for r in self.resources}
        seen: set[str] = set()
        pending = list(resource.depends_on)
        while pending:
            urn = pending.pop()
            if urn not in seen and urn in by_urn:
                seen.add(urn)
                pending += by_urn[urn].depends_on
        return [by_urn[urn] for urn in sorted(seen)]

    def as_dict(self) -> dict:
        return {"stack": self.stack, "resources": [r.as_dict() for r in self.resources]}


def _computed(type_token: str, name: str, inputs: dict) -> dict:
    """Placeholders for outputs AWS would compute and the program reads."""
    arn = f"arn:aws:{type_token.split(':')[1].split('/')[0]}:us-east-1:123456789012:{name}"
    values: dict = {"arn": arn}
    if type_token == "aws:eks/cluster:Cluster":
        values.update(
            endpoint=f"https://{name}.gr7.us-east-1.eks.amazonaws.com",
            certificateAuthority={"data": "LS0tLS1CRUdJTi1DRVJUSUZJQ0FURS0tLS0t"},
            identities=[{"oidcs": [{"issuer": f"https://oidc.eks.us-east-1.amazonaws.com/id/{name}"}]}],
            vpcConfig={**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{name}"})
    elif type_token == "aws:ec2/launchTemplate:LaunchTemplate":
        values["latestVersion"] = 1
    elif type_token == "aws:rds/instance:Instance":
        values.update(endpoint=f"{name}.abc.us-east-1.rds.amazonaws.com:5432",
                      address=f"{name}.abc.us-east-1.rds.amazonaws.com")
    elif type_token == "aws:elasticache/replicationGroup:ReplicationGroup":
        values["primaryEndpointAddress"] = f"master.{name}.abc.use1.cache.amazonaws.com"
    elif type_token == "aws:ecr/repository:Repository":
        values["repositoryUrl"] = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}"
    elif type_token == "aws:sqs/queue:Queue":
        values["url"] = f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}"
    elif type_token == "aws:s3/bucket:Bucket":
        values["bucket"] = inputs.get("bucket", f"{name}-0123abcd")
    elif type_token == "docker-build:index:Image":
        values.update(digest="sha256:" + "0" * 64,
                      ref=f"{inputs['tags'][0]}@sha256:" + "0" * 64)
    elif type_token == "random:index/randomId:RandomId":
        values["hex"] = "ab12" * int(inputs.get("byteLength", 4))
    elif type_token == "random:index/randomPassword:RandomPassword":
        values["result"] = "x" * int(inputs.get("length", 16))
    if "name" not in inputs and type_token.startswith("aws:"):
        values["name"] = name
    return values


def _ensure_event_loop() -> None:
    """Pulumi's mocks run on the thread's current event loop, and a caller that ran its own
    (``asyncio.run``, an async test) leaves none set, or a closed one: give the thread one."""
    try:
        if not asyncio.get_event_loop_policy().get_event_loop().is_closed():
            return
    except RuntimeError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())


def render(stack: str, root: Path | None = None) -> Graph:
    """Validate ``stack``'s config, then run the program under mocks and return its graph."""
    import pulumi  # noqa: PLC0415 - heavy: only when rendering
    from pulumi.runtime import mocks  # noqa: PLC0415
    from pulumi.runtime.stack import run_pulumi_func  # noqa: PLC0415
    from pulumi.runtime.sync_await import _sync_await  # noqa: PLC0415

    from infra.config import read_pulumi_config  # noqa: PLC0415
    from infra.program import build  # noqa: PLC0415

    values = stack_values(stack, root)
    config = parse_stack_config(values, source=f"Pulumi.{stack}.yaml", offline=True)
    recorded: dict[tuple[str, str], dict] = {}

    class RecordingMocks(mocks.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs):
            recorded[(args.typ, args.name)] = args.inputs
            return f"{args.name}-id", {**args.inputs, **_computed(args.typ, args.name,
                                                                   args.inputs)}

        def call(self, args: mocks.MockCallArgs):
            if args.token == "kubernetes:helm:template":
                return {"result": []}
            if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                # A region laid out like a real us-east-1 account: one zone EKS refuses.
                region = config.region
                return {"names": [f"{region}{c}" for c in "abcdef"],
                        "zoneIds": ["use1-az6", "use1-az3", "use1-az1", "use1-az2",
                                    "use1-az4", "use1-az5"], "id": region}
            if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
                wanted = [v for f in args.args.get("filters", [])
                          if f.get("name") == "instance-type" for v in f.get("values", [])]
                zones = [f"{config.region}{c}" for c in "abcdef"]
                pairs = [(z, t) for z in zones for t in wanted]
                return {"id": config.region, "locations": [z for z, _ in pairs],
                        "instanceTypes": [t for _, t in pairs],
                        "locationTypes": ["availability-zone"] * len(pairs)}
            if args.token == "aws:eks/getAddonVersion:getAddonVersion":
                return {"addonName": args.args.get("addonName"), "version": "v1.0.0-eksbuild.1",
                        "kubernetesVersion": args.args.get("kubernetesVersion")}
            if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
                return {"userName": "AWS", "password": "mock-token",
                        "proxyEndpoint": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}
            return {}

    order: list[Resource] = []

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request):  # noqa: N802 - gRPC method name
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                timeouts = request.customTimeouts
                order.append(Resource(
                    request.type, request.name, request.parent or None, {}, urn=response.urn,
                    depends_on=list(request.dependencies),
                    ignore_changes=list(request.ignoreChanges),
                    custom_timeouts={key: value for key, value in (
                        ("create", timeouts.create), ("update", timeouts.update),
                        ("delete", timeouts.delete)) if value}))
            return response

    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
         for key, value in values.items() if key != "region"}
        | {"aws:region": config.region}
        # Secrets an operator sets with `pulumi config set --secret`: offline, their presence
        # is assumed (a preview never needs their values).
        | {f"{PROJECT}:{name}": SECRET for name in OPERATOR_SECRETS if name not in values},
        secret_keys=[f"{PROJECT}:{name}" for name in OPERATOR_SECRETS])
    _ensure_event_loop()
    pulumi.runtime.set_mocks(RecordingMocks(), project=PROJECT, stack=stack, preview=False,
                             monitor=RecordingMonitor(RecordingMocks()))
    _sync_await(run_pulumi_func(lambda: build(read_pulumi_config(offline=True))))

    names = {r.urn: r.name for r in order}
    for resource in order:
        resource.inputs = _plain(recorded.get((resource.type, resource.name), {}))
        parent = names.get(resource.parent) if resource.parent else None
        resource.parent = parent
        resource.depends_on = sorted(urn for urn in set(resource.depends_on) if urn in names)
    # Registration order follows the resolution of outputs, which varies from run to run:
    # sort, so that a preview, its JSON and its manifests are the same for the same program.
    order.sort(key=lambda r: (r.type, r.name))
    stand_ins = [f"{PROJECT}:{name}" for name in OPERATOR_SECRETS if name not in values]
    if config.endpoint_public_access and not config.public_access_cidrs:
        stand_ins.append(f"{PROJECT}:publicAccessCidrs")
    return Graph(stack, config, order, sorted(stand_ins))


# Pulumi's wire form of a secret: {SIG_KEY: SECRET_SIG, "value": ...}.
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SECRET = "[secret]"


def _masked(value):
    """A secret's value with its shape kept (keys of a map, length of a list) and every
    scalar replaced: previews are read in pull requests, and manifests stay valid."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items() if k != _SIG_KEY}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return SECRET


def _plain(value):
    """Inputs as JSON-ready data (unknowns resolved by the mocks, secrets masked)."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _masked(_plain(value.get("value")))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format has only doubles
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
