"""Print the model card's tables from the evaluation and benchmark JSON files (Markdown).

python -m models.pipeline.card models/evaluation-test.json models/bench.json
python -m models.pipeline.card --field-pack models/field-pack-comparison.json   # the before / after section
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
        ("leaf photos: balanced top-1 (mean over classes)", "leaf_balanced_top1"),
        ("leaf photos: top-1 of those accepted", "leaf_top1_when_accepted"),
        ("leaf photos refused (retake)", "leaf_refused"),
        ("no-leaf photos refused", "background_refused"),
        ("all photos: top-1", "overall_top1"),
        ("ECE before temperature scaling", "ece_before"),
        ("ECE after temperature scaling", "ece_after"),
    ]
    out = [
        f"| lab {ev['split']} split, {ev.get('lab_photos', ev['photos'])} photos | int8 (shipped) | fp32 |",
        "|---|---|---|",
    ]
    out += [f"| {name} | {pct(i8[key])} | {pct(f32[key])} |" for name, key in rows]
    out.append(f"| temperature | {i8['temperature']:.3f} | {f32['temperature']:.3f} |")
    out.append(f"| file size | {i8['file_mb']:.2f} MB | {f32['file_mb']:.2f} MB |")
    return "\n".join(out)


def per_class(ev: dict) -> str:
    i8, f32 = ev["int8"]["per_class"], ev["fp32"]["per_class"]
    out = ["| class | crop | condition | test photos | int8 top-1 | fp32 top-1 |", "|---|---|---|---|---|---|"]
    for slug, r in i8.items():
        if not r["photos"]:
            continue  # taught from field photos only: see the field table
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
    zoo = ", ".join(f"**{v:.2f}** at {n} thread(s)" for n, v in b.get("int8_over_zoo_int8_p50_by_threads", {}).items())
    return "\n".join(out) + f"\n\nint8 p50 / fp32 p50: {ratios}\n\nint8 p50 / ONNX-zoo int8 MobileNetV2 p50: {zoo}"


FIELD_ROWS = (
    ("field-apple/rust", "apple rust (taught as cedar apple rust)"),
    ("field-apple/healthy", "healthy apple, on the tree"),
    ("field-apple/alternaria_leaf_spot", "Alternaria leaf spot"),
    ("field-apple/brown_spot", "brown spot (Marssonina)"),
    ("field-apple/gray_spot", "gray spot"),
    ("field-apple/new_diseases", "the three apple diseases PlantVillage lacks"),
    ("deepweeds/all", "DeepWeeds: weeds and rangeland (other plants)"),
)


def _cells(r: dict) -> str:
    return " | ".join("-" if r[k] is None else f"{r[k] * 100:.0f}%" for k in ("right", "refused", "unknown", "wrong"))


def field(ev: dict) -> str:
    """Held-out field photos: right / refused / unknown / wrong, by background, crop unknown and known."""
    unknown, known = ev["field"]["crop_unknown"]["table"], ev["field"]["crop_apple"]["table"]
    out = [
        "| held-out photos | background | n | right | refused | unknown | wrong | with crops = apple: right | "
        "refused | unknown | wrong |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, name in FIELD_ROWS:
        for bg, r in unknown[key].items():
            if bg != "all" and len(unknown[key]) == 2:
                continue  # one background only: the "all" row says it
            out.append(f"| {name} | {bg} | {r['photos']} | {_cells(r)} | {_cells(known[key][bg])} |")
    return "\n".join(out)


def background(ev: dict) -> str:
    b = ev.get("background_checks") or {}
    if not b:
        return ""
    lines = [f"Background checks on the {b['photos']} held-out picked leaves on paper or cloth:", ""]
    lines.append(
        f"- leaf painted out (paper or cloth alone): a disease named for "
        f"{b['leaf_painted_out/crop_unknown']['disease_named'] * 100:.1f}% (crop unknown), "
        f"{b['leaf_painted_out/crop_apple']['disease_named'] * 100:.1f}% (crops = apple)"
    )
    for mode, words in (("crop_unknown", "crop unknown"), ("crop_apple", "crops = apple")):
        r = b[f"leaf_on_field_scene/{mode}"]
        lines.append(
            f"- the same leaves moved onto held-out field scenes, {words}: right {r['right'] * 100:.0f}%, refused "
            f"{r['refused'] * 100:.0f}%, unknown {r['unknown'] * 100:.0f}%, wrong {r['wrong'] * 100:.0f}%"
        )
    return "\n".join(lines)


def _counts(r: dict) -> str:
    n = r["photos"]
    return " | ".join(f"{r[k]} ({r[k] / n * 100:.0f}%)" if n else "-" for k in ("right", "refused", "unknown", "wrong"))


# A field-pack photo's background (pipeline/fieldpack.py) as a row of the card's before/after table.
_BACKGROUND_ROWS = {
    "natural": "on the plant",
    "plain": "picked, on paper or cloth",
    "field": "background not said",
}


def field_pack(cmp: dict) -> str:
    """The card's "Field pack: before / after" section, from build's field-pack-comparison.json."""
    before, after = cmp["before"], cmp["after"]
    pack = cmp["pack"]
    out = [
        "## Field pack: before / after",
        "",
        f"Photos labelled at base (`{pack['path']}`, exported {pack.get('created_at') or '?'}): "
        f"{pack['train']} trained on, {pack['val']} for validation, {pack['held_out']} held out by their "
        "sha256 and never seen by training or tuning. Outcomes on the held-out part with the "
        "device's own rule, crop unknown (for photos without a leaf the right answer is a retake: refused).",
        "",
        "| held-out photos | n | model | right | refused | unknown | wrong |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [("all classes", before["field"], after["field"])]
    by_background = before.get("field_by_background", {})  # older comparisons have none
    rows += [
        (words, by_background[bg], after["field_by_background"][bg])
        for bg, words in _BACKGROUND_ROWS.items()
        if bg in by_background
    ]
    rows += [(f"`{slug}`", r, after["field_per_class"][slug]) for slug, r in before["field_per_class"].items()]
    for name, b, a in rows:
        out.append(f"| {name} | {b['photos']} | before ({before['version']}) | {_counts(b)} |")
        out.append(f"| | | after ({after['version']}) | {_counts(a)} |")
    bl, al = before["lab"], after["lab"]
    out += [
        "",
        f"| lab test split, {al['photos']} photos | before | after |",
        "|---|---|---|",
        f"| leaf photos: top-1 | {pct(bl['leaf_top1'])} | {pct(al['leaf_top1'])} |",
        f"| all photos: top-1 | {pct(bl['overall_top1'])} | {pct(al['overall_top1'])} |",
        "",
        f"Decision: **{cmp['decision']}**"
        + (f" ({'; '.join(cmp['worse_because'])})" if cmp["worse_because"] else "")
        + (" (shipped anyway: `--ship-even-if-worse`)" if cmp.get("shipped_even_if_worse") else ""),
        "",
        "Produced by:",
        "",
        "```sh",
        cmp["command"],
        "```",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if "--field-pack" in argv:
        at = argv.index("--field-pack")
        print(field_pack(json.loads(Path(argv[at + 1]).read_text())), "\n")
        argv = argv[:at] + argv[at + 2 :]
        if not argv:
            return 0
    ev = json.loads(Path(argv[0]).read_text())
    print(summary(ev), "\n")
    if "field" in ev:
        print(field(ev), "\n")
        print(background(ev), "\n")
    print(per_class(ev), "\n")
    if len(argv) > 1:
        print(bench(json.loads(Path(argv[1]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
