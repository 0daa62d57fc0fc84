"""Summarise py-spy collapsed stacks: `python -m bench.stacks FILE... [--top 30]`.

Prints the functions with the most samples on top of the stack (self) and anywhere in it (total).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--idle", action="store_true", help="keep samples of idle threads (default: drop them)")
    args = p.parse_args()
    own, total = Counter(), Counter()
    n = 0
    for f in args.files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if not args.idle and any(k in frames[-1] for k in ("select (selectors", "wait (threading", "_worker (concurrent", "get (queue", "poll (")):
                continue
            c = int(count)
            n += c
            own[frames[-1]] += c
            for fr in set(frames):
                total[fr] += c
    print(f"{n} samples")
    print("--- self")
    for fr, c in own.most_common(args.top):
        print(f"{100 * c / n:5.1f}%  {fr}")
    print("--- total")
    for fr, c in total.most_common(args.top):
        print(f"{100 * c / n:5.1f}%  {fr}")


if __name__ == "__main__":
    main()
