"""Compare two `appliance diagnose --json` outputs photo by photo (x86-64 against aarch64).

Why: the Pi runs another CPU's onnxruntime kernels on the same int8 model; the farmer must get the same
verdict and the same top-1 class there as on the machine the model was checked on. Probabilities may
differ a little between kernels, so they are reported (and gated only if --max-prob-diff is given).

    python deploy/ci/compare_diagnoses.py x86.jsonl arm.jsonl [--names x86-64,aarch64] [--max-prob-diff 0.05]

Exit status: 0 all photos agree, 1 a photo differs (or failed, or is missing on one side), 2 unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path


class InputError(Exception):
    """An output file that cannot be compared: missing, empty, not `diagnose --json` lines."""


@dataclass(frozen=True)
class Outcome:
    """What one run said about one photo."""

    verdict: str
    top1: str
    prob: float
    probs: dict[str, float]
    model_sha256: str
    error: str = ""

    def cell(self) -> str:
        if self.error:
            return "ERROR"
        return f"{self.verdict} {self.top1} {self.prob:.4f}"


def load(path: Path) -> dict[str, Outcome]:
    """One Outcome per photo, keyed by file name (the two runs may see the photos under different paths)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    out: dict[str, Outcome] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name = Path(row["file"]).name
            if "error" in row:
                outcome = Outcome("", "", 0.0, {}, "", error=str(row["error"]))
            else:
                top = row["top_k"]
                probs = {r["slug"]: float(r["probability"]) for r in top}
                outcome = Outcome(
                    row["verdict"], top[0]["slug"], float(top[0]["probability"]), probs, row["model_sha256"]
                )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InputError(
                f"{path}:{number}: not a line of `appliance diagnose --json` output ({exc!r}): {line[:120]}"
            ) from None
        if name in out:
            raise InputError(f"{path}:{number}: {name} appears twice; give each photo once")
        out[name] = outcome
    if not out:
        raise InputError(f"{path}: no diagnoses in it (did the run fail before the first photo?)")
    return out


def max_prob_diff(a: Outcome, b: Outcome) -> float:
    """Largest difference over the classes both runs ranked in their top k."""
    shared = a.probs.keys() & b.probs.keys()
    return max((abs(a.probs[s] - b.probs[s]) for s in shared), default=0.0)


def compare(
    left: dict[str, Outcome], right: dict[str, Outcome], names: tuple[str, str], limit: float | None
) -> tuple[list[list[str]], list[str], float]:
    """Table rows, problems found, and the largest probability difference."""
    rows: list[list[str]] = []
    problems: list[str] = []
    worst = 0.0
    for photo in sorted(left.keys() | right.keys()):
        a, b = left.get(photo), right.get(photo)
        if a is None or b is None:
            missing = names[0] if a is None else names[1]
            problems.append(f"{photo}: no result from the {missing} run")
            rows.append([photo, a.cell() if a else "-", b.cell() if b else "-", "-", "MISSING"])
            continue
        if a.error or b.error:
            for side, o in zip(names, (a, b), strict=True):
                if o.error:
                    problems.append(f"{photo}: the {side} run failed: {o.error}")
            rows.append([photo, a.cell(), b.cell(), "-", "FAILED"])
            continue
        diff = max_prob_diff(a, b)
        worst = max(worst, diff)
        status = "ok"
        if a.verdict != b.verdict:
            problems.append(f"{photo}: verdict {a.verdict} on {names[0]}, {b.verdict} on {names[1]}")
            status = "DIFFERS"
        if a.top1 != b.top1:
            problems.append(f"{photo}: top-1 {a.top1} on {names[0]}, {b.top1} on {names[1]}")
            status = "DIFFERS"
        if a.model_sha256 != b.model_sha256:
            problems.append(f"{photo}: the runs used different models ({a.model_sha256[:12]}, {b.model_sha256[:12]})")
            status = "DIFFERS"
        if limit is not None and diff > limit:
            problems.append(f"{photo}: probabilities differ by {diff:.4f}, more than --max-prob-diff {limit}")
            status = "DIFFERS"
        rows.append([photo, a.cell(), b.cell(), f"{diff:.6f}", status])
    return rows, problems, worst


def format_table(rows: list[list[str]], names: tuple[str, str]) -> str:
    header = ["photo", f"{names[0]}: verdict top-1 prob", f"{names[1]}: verdict top-1 prob", "max |dp|", ""]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("left", type=Path, help="JSON lines from the reference run (x86-64)")
    ap.add_argument("right", type=Path, help="JSON lines from the run under test (aarch64)")
    ap.add_argument("--names", default="x86-64,aarch64", help="what to call the two runs (default x86-64,aarch64)")
    ap.add_argument("--max-prob-diff", type=float, help="also fail when a probability differs by more than this")
    args = ap.parse_args(argv)
    left_name, _, right_name = args.names.partition(",")
    names = (left_name or "left", right_name or "right")
    try:
        left, right = load(args.left), load(args.right)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, problems, worst = compare(left, right, names, args.max_prob_diff)
    print(format_table(rows, names))
    print(f"\n{len(rows)} photo(s); max absolute probability difference {worst:.6f}")
    for problem in problems:
        print(f"MISMATCH: {problem}")
    if problems:
        print(f"FAIL: {len(problems)} difference(s) between {names[0]} and {names[1]}")
        return 1
    print(f"OK: every photo has the same verdict and top-1 class on {names[0]} and {names[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
