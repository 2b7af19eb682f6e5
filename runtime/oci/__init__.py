"""Bundles in OCI registries: ``registry`` speaks the distribution API (standard library only),
``layout`` maps a bundle to an artifact (one layer per file, ModelPack media types), ``pull``
fetches one onto a device. Imported only by the pull command (and by ``edgepack push``)."""
from __future__ import annotations
