"""What a build is asked to do: manifests and targets, loaded strictly.

``fields`` declares every field once (type, default, choices, help) and walks YAML nodes with
errors that name the file and key; ``manifest`` and ``targets`` are the two documents built on it;
``schema`` renders the same declarations as JSON Schema (``edgepack schema``). The shipped targets'
YAML is package data in ``packager/shipped_targets/``.
"""
