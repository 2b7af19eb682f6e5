"""A build's work as a chain of steps: the step contract, the route table and the cache-key rule.

``base`` says what a step is, ``model_steps``/``artifact_steps`` wrap ``packager.convert`` and
``packager.passes`` as steps, ``routes`` says which steps make which candidate, and ``keys`` is
the one function every cache key comes from.
"""
from __future__ import annotations

from .base import ArtifactStep, ModelStep, StepContext, StepResult, Variant, variant_of
from .keys import step_key
from .routes import ROUTES, SUPPORTED_FORMATS, UNSUPPORTED_ROUTES, Route, RouteKey, route_for

__all__ = ["ROUTES", "SUPPORTED_FORMATS", "UNSUPPORTED_ROUTES", "ArtifactStep", "ModelStep", "Route", "RouteKey",
           "StepContext", "StepResult", "Variant", "route_for", "step_key", "variant_of"]
