"""`import runtime` (no backend) against `import numpy`, each in fresh subprocesses.

Goal (issue 6): `import runtime` costs at most 30 ms more than `import numpy`. Runs alternate
(numpy, runtime, runtime, numpy, ...) so drift hits both; the figure is the difference of the
medians.
"""
from __future__ import annotations

import common

CODE = ("import time, sys; t = time.perf_counter(); import {mod}; "
        "sys.stdout.write(repr(time.perf_counter() - t))")


def once(mod: str) -> float:
    proc = common.run([common.PY, "-c", CODE.format(mod=mod)])
    if proc.returncode:
        raise SystemExit(f"import {mod} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip())


def main() -> int:
    args = common.parser(__doc__).parse_args()
    n = 5 if args.quick else 15
    once("numpy"), once("runtime")  # warm the OS file cache and .pyc files
    t_np, t_rt = [], []
    for i in range(n):  # alternating, the order flipping every pair
        if i % 2 == 0:
            t_np.append(once("numpy"))
            t_rt.append(once("runtime"))
        else:
            t_rt.append(once("runtime"))
            t_np.append(once("numpy"))
    np_s, rt_s = common.median(t_np), common.median(t_rt)
    extra = rt_s - np_s
    common.emit(args, "import", [common.row(
        "`import runtime` (no backend)", "≤ 30 ms extra",
        f"{np_s * 1e3:.1f} ms (`import numpy`)",
        f"{rt_s * 1e3:.1f} ms ({extra * 1e3:+.1f} ms)", extra <= 0.030, key="import",
        runs=n, numpy_ms=np_s * 1e3, runtime_ms=rt_s * 1e3, extra_ms=extra * 1e3,
        numpy_samples_ms=[t * 1e3 for t in t_np], runtime_samples_ms=[t * 1e3 for t in t_rt],
        pair_extra_ms=common.stats([(r - m) * 1e3 for r, m in zip(t_rt, t_np, strict=True)]))],
        method=f"`import X` timed inside fresh subprocesses, alternating numpy and runtime (the "
               "order flipping every pair), "
               f"{n} pairs; figure: difference of the medians")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
