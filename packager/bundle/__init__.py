"""Writing a bundle: the atomic, deterministic writer (``writer``), its signature (``signing``),
the texts it carries (``texts``: README, requirements) and the runtime wheel (``runtime_wheel``).
bundle.json itself is the runtime's typed schema (``runtime.bundle_json``)."""
