"""Helpers shared by the components: child options and naming."""

from __future__ import annotations

import pulumi


def child(parent: pulumi.Resource, **kwargs) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **kwargs)


def k8s_child(parent: pulumi.Resource, provider: pulumi.ProviderResource,
              **kwargs) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=provider, **kwargs)
