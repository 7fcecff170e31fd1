"""Argument types the k8s tools share. Every name that goes into a URL is checked against Kubernetes' own
grammar (no '/', never '..': never a path escape); the check runs in a validator rather than as a schema
``pattern``, because every byte of a schema is read by a model in every session."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field

__all__ = ["NAME_PATTERN", "LabelName", "ObjectKind", "ObjectName", "matches"]

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # DNS-1123 subdomain: object names
LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # DNS-1123 label: namespaces, containers
KIND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9./-]{0,252}$"


def matches(pattern: str, what: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value) or ".." in value:
            raise ValueError(f"not a valid {what}")
        return value

    return check


ObjectName = Annotated[str, Field(max_length=253), AfterValidator(matches(NAME_PATTERN, "object name"))]
LabelName = Annotated[str, Field(max_length=63), AfterValidator(matches(LABEL_PATTERN, "name (DNS label)"))]
ObjectKind = Annotated[
    str,
    Field(max_length=253, description="pods, deploy, deployments.apps, apps/v1/Deployment, custom kinds"),
    AfterValidator(matches(KIND_PATTERN, "kind")),
]
