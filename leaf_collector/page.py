"""The agronomist's read-only view: one server-rendered HTML page and a CSV export (no JavaScript).

Times are UTC and ISO 8601 everywhere, so a spreadsheet sorts them and nobody has to guess a
device's time zone. The CSV starts with a UTF-8 byte-order mark so Excel reads accents right,
and text cells that a spreadsheet would run as a formula are prefixed with an apostrophe.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from html import escape
from typing import Any

from leaf_collector.consensus import BACKGROUNDS
from leaf_collector.db import CSV_COLUMNS
from leaf_collector.fieldfigures import OUTCOMES, DeviceModel
from leaf_wire import reasons
from leaf_wire.csvcell import csv_chunks


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "never"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)  # csv_chunks guards what a spreadsheet would run


def csv_stream(rows: Iterable[tuple[Any, ...]]) -> Iterator[bytes]:
    """The CSV body in chunks: BOM and header first, then rows as they come from the database."""
    for chunk in csv_chunks(CSV_COLUMNS, ([_cell(v) for v in row] for row in rows)):
        yield chunk.encode("utf-8")


_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:72em;padding:0 1em;color:#1b1b1b}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em}
table{border-collapse:collapse;margin:.3em 0}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.totals{display:flex;gap:1.2em;flex-wrap:wrap;margin:.8em 0}
.totals div{background:#eef5ea;padding:.5em .9em;border-radius:6px}
.totals b{display:block;font-size:1.4em}.grid{display:flex;gap:2.5em;flex-wrap:wrap}.muted{color:#666}
img.thumb{width:64px;height:64px;object-fit:cover;border-radius:4px;display:block}
.unknown{color:#4a148c;font-weight:600}
a.button{display:inline-block;background:#2e6b1f;color:#fff;padding:.45em .9em;border-radius:5px;text-decoration:none}
"""


def _table(id_: str, headings: list[str], rows: list[list[str]], numeric: set[int], empty: str) -> str:
    if not rows:
        return f'<p class="muted" id="{id_}">{escape(empty)}</p>'
    head = "".join(f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headings))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table id="{id_}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _label(text: str, fallback: str) -> str:
    return escape(text) if text else f'<span class="muted">{escape(fallback)}</span>'


def _result(d: dict[str, Any]) -> str:
    """One record's result cell: the diagnosis, "not known" (its own colour) or the retake reason."""
    if d["verdict"] == "diagnosis":
        return f"{_label(d['crop'], '?')} – {_label(d['condition'], '?')}"
    if d["verdict"] == "unknown":
        words = reasons.unknown_words(d["reason"] or "")[0]
        crop = f"{escape(d['crop'])} – " if d["crop"] else ""
        return f'<span class="unknown">not known: {crop}{escape(words)}</span>'
    return f'<span class="muted">retake ({escape(d["reason"] or "?")})</span>'


_BACKGROUND_HEADINGS = {"natural": "On the plant", "plain": "Picked"}


def _models_table(models: list[DeviceModel]) -> str:
    """Per device: the model it runs now, since its rollout there, and how it did on labelled photos since."""
    rows = []
    for m in models:
        if m.labelled:
            figures = [str(m.counts[k]) for k in OUTCOMES] + [str(m.labelled)]
            figures += [_right_and_wrong(m.by_background[b]) for b in BACKGROUNDS]
        else:
            figures = ["", "", "", "", '<span class="muted">no labels yet</span>', "", ""]
        model = f'{escape(m.model_version)} <span class="muted">{escape(m.model_sha256[:12])}</span>'
        rows.append([escape(m.device_id), model, escape(_short(m.since)), *figures])
    return _table(
        "models",
        ["Device", "Model now", "Since (UTC)", "Right", "Refused", "Unknown", "Wrong", "Labelled"]
        + [_BACKGROUND_HEADINGS[b] for b in BACKGROUNDS],
        rows,
        {3, 4, 5, 6, 7, 8, 9},
        "No records yet.",
    )


def _right_and_wrong(counts: dict[str, int]) -> str:
    """Of the labelled photos with one background, right and wrong: a background shortcut shows as a gap."""
    n = sum(counts.values())
    if not n:
        return '<span class="muted">none said</span>'
    return f"{counts['right']} of {n} right, {counts['wrong']} wrong"


def render_page(
    overview: dict[str, Any],
    latest: list[dict[str, Any]],
    *,
    days: int,
    now: datetime,
    models: list[DeviceModel] | None = None,
) -> str:
    o = overview
    totals = (
        f'<div class="totals">'
        f'<div id="total-diagnoses"><b>{o["total"]}</b>records</div>'
        f'<div id="total-diagnosed"><b>{o["diagnosed"]}</b>diagnosed</div>'
        f'<div id="total-retakes"><b>{o["retakes"]}</b>retakes</div>'
        f'<div id="total-unknown"><b>{o.get("unknown", 0)}</b>not known</div>'
        f'<div id="total-devices"><b>{o["devices"]}</b>devices reporting</div>'
        f"<div><b>{escape(_short(o['last_received']))}</b>last received (UTC)</div>"
        f"</div>"
    )
    by_crop = _table(
        "by-crop",
        ["Crop", "Diagnoses"],
        [[_label(crop, "(unknown)"), str(n)] for crop, n in o["by_crop"]],
        {1},
        "No diagnoses yet.",
    )
    by_condition = _table(
        "by-condition",
        ["Crop", "Condition", "Diagnoses"],
        [[_label(crop, "(unknown)"), _label(cond, "(unknown)"), str(n)] for crop, cond, n in o["by_condition"]],
        {2},
        "No diagnoses yet.",
    )
    by_device = _table(
        "by-device",
        ["Device", "Records", "Retakes", "Latest diagnosis (UTC)", "Last sync (UTC)", "Token"],
        [
            [
                escape(dev),
                str(n),
                str(retakes),
                escape(_short(last)),
                escape(_short(seen)),
                "active" if ok else "revoked",
            ]
            for dev, n, retakes, last, seen, ok in o["by_device"]
        ],
        {1, 2},
        "No device enrolled yet: leaf-collector token issue DEVICE_ID",
    )
    by_day = _table(
        "by-day",
        ["Day (UTC)", "Records", "Retakes"],
        [[day.isoformat(), str(n), str(retakes)] for day, n, retakes in o["by_day"]],
        {1, 2},
        f"Nothing in the last {days} days.",
    )
    latest_rows = []
    for d in latest:
        thumb = (
            f'<img class="thumb" src="photos/{d["id"]}/thumbnail.jpg" alt="leaf photo" loading="lazy">'
            if d["has_thumbnail"]
            else '<span class="muted">no photo</span>'
        )
        what = _result(d)
        probability = f"{d['top1_probability'] * 100:.0f}%" if d["top1_probability"] is not None else ""
        when = escape(iso(d["created_at"]))
        if d["clock_suspect"]:  # kept as sent, sorted by arrival
            when = f'{when}<br><span class="unknown">device clock wrong: arrived {escape(iso(d["received_at"]))}</span>'
        latest_rows.append([thumb, when, escape(d["device_id"]), what, probability])
    latest_table = _table(
        "latest", ["Photo", "Time (UTC)", "Device", "Result", "Confidence"], latest_rows, {4}, "No diagnoses yet."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leaf diagnoses – fleet</title><style>{_STYLE}</style></head>
<body>
<h1>Leaf diagnoses – fleet</h1>
<p class="muted">Read-only. Generated {escape(iso(now))}. <a class="button" id="csv" href="diagnoses.csv"
download>Download CSV (all records)</a> <a id="label-link" href="label">Label field photos (sign in)</a></p>
{totals}
<div class="grid"><section><h2>By crop</h2>{by_crop}</section>
<section><h2>By crop and condition</h2>{by_condition}</section></div>
<h2>By device</h2>{by_device}
<h2>Models on the fleet</h2><p class="muted">Each device's model now and, on photos people labelled since
its rollout there: right, refused (retake), unknown ("I don't know this"), wrong; and of those its
labellers saw on the plant, and of those they saw picked (on paper, cloth or a table), how many were
right and wrong.</p>{_models_table(models or [])}
<h2>By day, last {days} days</h2>{by_day}
<h2>Latest {len(latest)} records</h2>{latest_table}
</body></html>
"""
