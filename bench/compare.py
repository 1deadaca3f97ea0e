"""``make bench-compare A B``: the figures of two commits side by side, with B / A.

    .venv/bin/python -m bench.compare <sha A> <sha B> [--match dag.1m]

A and B are commit-ish (``HEAD~2``, a branch) or result-file prefixes under ``.local/bench/results/``.
Figures are compared only where both commits have them; run ``make bench`` on each commit first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.run import RESULTS, ROOT


def result_file(ref: str) -> Path:
    resolved = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", ref], cwd=ROOT, capture_output=True, text=True, check=False
    )
    prefix = resolved.stdout.strip()[:12] if resolved.returncode == 0 else ref
    found = sorted(RESULTS.glob(f"{prefix}*.json"))
    if not found:
        sys.exit(f"no results for {ref!r} in {RESULTS.relative_to(ROOT)}: run `make bench` on that commit first")
    return max(found, key=lambda p: p.stat().st_mtime)  # a clean result and a -dirty one: the newer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--match", default="", help="only figures whose name contains this")
    args = parser.parse_args()
    files = result_file(args.a), result_file(args.b)
    a, b = (json.loads(path.read_text())["figures"] for path in files)
    shared = sorted(name for name in a.keys() & b.keys() if args.match in name)
    print(f"A = {files[0].stem}   B = {files[1].stem}")
    print(f"{'figure':<72}{'A':>12}{'B':>12}{'B / A':>9}")
    for name in shared:
        ratio = b[name] / a[name] if a[name] else float("nan")
        print(f"{name:<72}{a[name]:>12.4g}{b[name]:>12.4g}{ratio:>9.2f}")
    for name in shared:
        if a[name]:
            print(f"bench: compare.{name}={b[name] / a[name]:.6g}")
    print(f"{len(shared)} shared figures; only in A: {len(a.keys() - b.keys())}, only in B: {len(b.keys() - a.keys())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
