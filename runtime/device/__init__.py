"""What this device is and whether a bundle fits it (``python -m runtime doctor``).

``facts`` reads /proc and /etc (no imports, no programs run); ``inventory`` finds the installed
backends and GPU stacks; ``requirements`` checks a bundle's requirements.txt against what is
installed; ``known_bad`` holds the combinations known to crash; ``doctor`` puts them together.
Nothing here is imported by ``import runtime`` or by ``run``.
"""
