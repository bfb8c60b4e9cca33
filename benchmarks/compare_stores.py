"""Two results stores, config by config: whether every run of one is in the other with the same status, the same
metrics and the same epoch rows, bit for bit (docs/reproducibility.md). What may differ is where and when a run
was made (wall time, host, timestamps, attempts), which is printed, not compared.

Run: ``python benchmarks/compare_stores.py A.db B.db``; exit 0 when identical, 1 when not (the differences are
listed), 2 for a file that is not a store.
"""
from __future__ import annotations

import argparse
import sys

from wninit.errors import UserError
from wninit.suite.sweep.store import Store
from wninit.suite.train.result import FINISHED


def snapshot(path: str) -> tuple[dict, set]:
    """run id -> (config JSON, status, metrics, epoch rows), and the machines (cpu, isa, gpu) that made them."""
    with Store(path, create=False) as store:
        # a metric a run does not have reads as None in a newer schema ("returns" of a supervised run): same result
        runs = {r.id: (r.config.to_json(), r.status, {k: v for k, v in r.metrics.items() if v is not None},
                       store.epochs(r.id)) for r in store.runs()}
        machines = {(r.cpu, r.isa, r.gpu) for r in store.runs() if r.status in FINISHED}
    return runs, machines


def differences(a: dict, b: dict) -> list[str]:
    out = [f"{rid}: only in the first store" for rid in sorted(a.keys() - b.keys())]
    out += [f"{rid}: only in the second store" for rid in sorted(b.keys() - a.keys())]
    for rid in sorted(a.keys() & b.keys()):
        for what, x, y in zip(("config", "status", "metrics", "epochs"), a[rid], b[rid]):
            if x != y:
                out.append(f"{rid}: {what} differs: {x!r} vs {y!r}"[:400])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", metavar="A.db")
    parser.add_argument("second", metavar="B.db")
    args = parser.parse_args(argv)
    try:
        (a, ma), (b, mb) = snapshot(args.first), snapshot(args.second)
    except UserError as exc:
        print(f"compare_stores: {exc}", file=sys.stderr)
        return 2
    print(f"{args.first}: {len(a)} runs, made on {sorted(ma, key=str)}")
    print(f"{args.second}: {len(b)} runs, made on {sorted(mb, key=str)}")
    diffs = differences(a, b)
    if diffs:
        print(f"different: {len(diffs)} runs")
        print("\n".join(f"  {d}" for d in diffs[:50]))
        return 1
    finished = sum(1 for v in a.values() if v[1] in ("completed", "diverged"))
    print(f"identical: {len(a)} runs ({finished} finished), config by config: status, metrics and every epoch row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
