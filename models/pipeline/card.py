"""Print the model card's tables from the evaluation and benchmark JSON files (Markdown).

python -m models.pipeline.card models/evaluation-test.json models/bench.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.labels import label


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def summary(ev: dict) -> str:
    i8, f32 = ev["int8"], ev["fp32"]
    rows = [
        ("leaf photos: top-1", "leaf_top1"),
        ("leaf photos: top-1 of those accepted", "leaf_top1_when_accepted"),
        ("leaf photos refused (retake)", "leaf_refused"),
        ("no-leaf photos refused", "background_refused"),
        ("all photos: top-1", "overall_top1"),
        ("ECE before temperature scaling", "ece_before"),
        ("ECE after temperature scaling", "ece_after"),
    ]
    out = [f"| {ev['split']} split, {ev['photos']} photos | int8 (shipped) | fp32 |", "|---|---|---|"]
    out += [f"| {name} | {pct(i8[key])} | {pct(f32[key])} |" for name, key in rows]
    out.append(f"| temperature | {i8['temperature']:.3f} | {f32['temperature']:.3f} |")
    out.append(f"| file size | {i8['file_mb']:.2f} MB | {f32['file_mb']:.2f} MB |")
    return "\n".join(out)


def per_class(ev: dict) -> str:
    i8, f32 = ev["int8"]["per_class"], ev["fp32"]["per_class"]
    out = ["| class | crop | condition | test photos | int8 top-1 | fp32 top-1 |", "|---|---|---|---|---|---|"]
    for slug, r in i8.items():
        words = label(slug)
        out.append(
            f"| `{slug}` | {words.crop} | {words.condition} | {r['photos']} | {pct(r['top1'])} | "
            f"{pct(f32[slug]['top1'])} |"
        )
    return "\n".join(out)


def bench(b: dict) -> str:
    out = [
        "| engine | threads | p50 ms | p99 ms | images/s | load ms | peak RSS MB | file MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in b["results"]:
        if "error" in r:
            out.append(f"| {r['engine']} | {r['threads']} | failed: {r['error']} | | | | | |")
            continue
        out.append(
            f"| {r['engine']} | {r['threads']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['images_per_s']:.0f} | "
            f"{r['load_ms']:.0f} | {r['peak_rss_mb']:.0f} | {r['model_mb']:.2f} |"
        )
    ratios = ", ".join(f"**{v:.2f}** at {n} thread(s)" for n, v in b["int8_over_fp32_p50_by_threads"].items())
    return "\n".join(out) + f"\n\nint8 p50 / fp32 p50: {ratios}"


def main(argv: list[str]) -> int:
    ev = json.loads(Path(argv[0]).read_text())
    print(summary(ev), "\n")
    print(per_class(ev), "\n")
    if len(argv) > 1:
        print(bench(json.loads(Path(argv[1]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
