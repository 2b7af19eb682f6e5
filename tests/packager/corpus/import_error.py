# an entry point file whose import fails
import edgepack_no_such_module  # noqa: F401


def build():
    return None
