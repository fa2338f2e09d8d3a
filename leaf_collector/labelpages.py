"""The labelling pages as HTML strings, built like page.py: no JavaScript, every value escaped.

Each action is its own small form that POSTs with the session's CSRF token; the browser
follows the 303 back to the queue, so a reload never labels twice.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

from leaf_collector.labelling import BACKGROUND_WORDS, MARKS, ClassName, derived_name, label_text
from leaf_collector.page import _STYLE, iso
from leaf_wire import reasons

_MORE_STYLE = """
.photo{display:flex;gap:1.5em;flex-wrap:wrap;border-top:1px solid #ccc;padding:1em 0}
.photo img{max-width:420px;max-height:420px;border-radius:6px;background:#eee}
.photo dl{display:grid;grid-template-columns:auto 1fr;gap:.2em 1em;margin:0 0 .8em}.photo dt{color:#666}
form.inline{display:inline;margin:0}button{font:inherit;padding:.35em .8em;margin:.15em .3em .15em 0;cursor:pointer}
button.confirm{background:#2e6b1f;color:#fff;border:0;border-radius:5px}
.error{background:#fde8e8;color:#8a1111;padding:.5em .9em;border-radius:6px}
nav{display:flex;gap:1.2em;align-items:center;margin:.3em 0 1em}label{display:block;margin:.4em 0}
input[type=text],input[type=password]{font:inherit;padding:.3em;width:18em}
fieldset.background{border:1px solid #ccc;border-radius:6px;margin:0 0 .6em;padding:.3em .8em}
label.inline{display:inline;margin:0 1em 0 0}
"""

# What "confirm" means when the device gave no class: its refusal stated as a mark.
_CONFIRM_MARK = {
    ("unknown", "other_plant"): "other_plant",
    ("retake", "no_leaf"): "not_a_leaf",
    ("retake", "blurred"): "unusable",
    ("retake", "too_dark"): "unusable",
    ("retake", "too_bright"): "unusable",
}


def _document(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_STYLE}{_MORE_STYLE}</style></head>
<body>
{body}
</body></html>
"""


def login_page(csrf: str, *, username: str = "", error: str = "") -> str:
    problem = f'<p class="error" id="login-error">{escape(error)}</p>' if error else ""
    return _document(
        "Sign in – leaf labelling",
        f"""<h1>Sign in to label field photos</h1>
<p class="muted">Accounts are made at base: <code>leaf-collector account add NAME</code>.
<a href="/">Back to the read-only overview</a></p>
{problem}
<form method="post" action="/login" id="login">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label>Username<br><input type="text" name="username" value="{escape(username)}" autocomplete="username"
 required autofocus></label>
<label>Password<br><input type="password" name="password" autocomplete="current-password" required></label>
<button class="confirm" type="submit">Sign in</button>
</form>""",
    )


def message_page(title: str, text: str, *, link: str = "/login", link_text: str = "Sign in") -> str:
    return _document(
        title,
        f'<h1>{escape(title)}</h1><p class="error">{escape(text)}</p>'
        f'<p><a href="{escape(link)}">{escape(link_text)}</a></p>',
    )


def _nav(username: str, csrf: str, here: str) -> str:
    links = [("/label", "Queue"), ("/label/disagreements", "Disagreements"), ("/", "Overview")]
    items = "".join(
        f"<b>{escape(text)}</b>" if href == here else f'<a href="{escape(href)}">{escape(text)}</a>'
        for href, text in links
    )
    return (
        f"<nav>{items}<span class=muted>signed in as <b id=user>{escape(username)}</b></span>"
        f'<form class="inline" method="post" action="/logout">{_csrf(csrf)}'
        f'<button type="submit" id="logout">Sign out</button></form></nav>'
    )


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def _name(slug: str | None, names: dict[str, ClassName]) -> str:
    if not slug:
        return "?"
    return (names.get(slug) or derived_name(slug)).text if "__" in slug else slug


def device_said(item: dict[str, Any]) -> str:
    """The device's answer in words, as plain text (escaped by the caller)."""
    verdict, reason = item["verdict"], item["reason"] or ""
    if verdict == "diagnosis":
        return f"{item['crop'] or '?'} – {item['condition'] or '?'}"
    if verdict == "unknown":
        crop = f"{item['crop']} – " if item["crop"] else ""
        return f"not known: {crop}{reasons.unknown_words(reason)[0]}"
    return f"retake: {reasons.retake_words(reason)[0]}"


def _facts(item: dict[str, Any], names: dict[str, ClassName]) -> str:
    probability = item["top1_probability"]
    confidence = f"{probability * 100:.0f}%" if probability is not None else "–"
    topk = ", ".join(
        f"{_name(str(t.get('slug')), names)} {float(t.get('probability') or 0) * 100:.0f}%"
        for t in item["topk"]
        if isinstance(t, dict)
    )
    crops = ", ".join(str(c) for c in item["crops"]) if item["crops"] else "every crop"
    rows = [
        ("Device said", device_said(item)),
        ("Confidence", confidence),
        ("Top choices", topk or "–"),
        ("Crop setting", crops),
        ("Device", item["device_id"]),
        ("Taken (UTC)", iso(item["created_at"])),
    ]
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows) + "</dl>"


def confirm_label(item: dict[str, Any], names: dict[str, ClassName]) -> str | None:
    """The label "confirm" stores: the device's class, or its refusal as a mark; None when it claimed nothing."""
    if item["verdict"] == "diagnosis":
        slug = item["top1_slug"] or ""
        return slug if slug in names else None
    return _CONFIRM_MARK.get((item["verdict"], item["reason"] or ""))


def _photo_img(sha: str) -> str:
    return f'<img src="/label/photos/{escape(sha)}.jpg" alt="field photo {escape(sha[:12])}" loading="lazy">'


def _background_choice(sha: str) -> str:
    """Where the leaf is: optional, "not said" checked, so a quick label stays one click."""
    choices = [*BACKGROUND_WORDS.items(), ("", "Can't tell")]
    radios = "".join(
        f'<label class="inline"><input type="radio" name="background" value="{escape(value)}"'
        f"{' checked' if not value else ''}> {escape(text)}</label>"
        for value, text in choices
    )
    return f'<fieldset class="background" id="background-{sha}"><legend>Where is the leaf?</legend>{radios}</fieldset>'


def _label_form(item: dict[str, Any], names: dict[str, ClassName], csrf: str) -> str:
    """One form per photo: the background, then a quick button or a chosen class (the button's value wins)."""
    sha = escape(item["sha256"])
    confirm = confirm_label(item, names)
    buttons = ""
    if confirm is not None:
        buttons += (
            f'<button class="confirm" type="submit" name="label" value="{escape(confirm)}" formnovalidate>'
            f"Confirm: {escape(label_text(confirm, names))}</button>"
        )
    buttons += "".join(
        f'<button type="submit" name="label" value="{escape(mark)}" formnovalidate>{escape(text)}</button>'
        for mark, text in MARKS.items()
    )
    groups: dict[str, list[ClassName]] = {}
    for name in names.values():
        groups.setdefault(name.crop, []).append(name)
    options = "".join(
        f'<optgroup label="{escape(crop)}">'
        + "".join(f'<option value="{escape(n.slug)}">{escape(n.text)}</option>' for n in members)
        + "</optgroup>"
        for crop, members in groups.items()
    )
    return (
        f'<form class="label" method="post" action="/label/{sha}">{_csrf(csrf)}{_background_choice(sha)}'
        f'<div class="quick">{buttons}</div>'
        f'<div class="choose"><select name="class" required><option value="">The right class…</option>{options}'
        f'</select><button class="choose" type="submit" name="label" value="">Save this class</button></div></form>'
    )


def queue_page(
    username: str,
    csrf: str,
    items: list[dict[str, Any]],
    names: dict[str, ClassName],
    *,
    unlabelled: int,
    total: int,
    now: datetime,
) -> str:
    second = total - unlabelled
    sections = []
    for item in items:
        others = int(item["labels"])
        tag = (
            f'<p class="unknown">Second opinion: labelled by {others} other{"s" if others > 1 else ""}</p>'
            if others
            else ""
        )
        sections.append(
            f'<section class="photo" id="photo-{escape(item["sha256"])}">'
            f"<div>{_photo_img(item['sha256'])}</div>"
            f"<div>{tag}{_facts(item, names)}{_label_form(item, names, csrf)}</div></section>"
        )
    body = "".join(sections) or '<p class="muted" id="empty">Nothing left to label. Thank you.</p>'
    return _document(
        "Label field photos",
        f"""<h1>Label field photos</h1>
{_nav(username, csrf, "/label")}
<p id="counts"><b>{unlabelled}</b> unlabelled, <b>{second}</b> more for a second opinion
<span class="muted">(hardest first: not known and not sure, then lowest confidence;
generated {escape(iso(now))})</span></p>
{body}""",
    )


def disagreements_page(
    username: str, csrf: str, items: list[dict[str, Any]], names: dict[str, ClassName], *, now: datetime
) -> str:
    sections = []
    for item in items:
        said = "".join(
            f"<tr><td>{escape(who)}</td><td>{escape(label_text(label, names))}</td>"
            f"<td>{escape(BACKGROUND_WORDS.get(bg or '', 'not said'))}</td><td>{escape(iso(when))}</td></tr>"
            for who, label, when, bg in item["said"]
        )
        sections.append(
            f'<section class="photo" id="photo-{escape(item["sha256"])}">'
            f"<div>{_photo_img(item['sha256'])}</div><div>{_facts(item, names)}"
            f'<table class="said"><thead><tr><th>Who</th><th>Label</th><th>Where the leaf is</th>'
            f"<th>When (UTC)</th></tr></thead>"
            f"<tbody>{said}</tbody></table></div></section>"
        )
    body = "".join(sections) or '<p class="muted" id="empty">No disagreements.</p>'
    return _document(
        "Label disagreements",
        f"""<h1>Where labels disagree</h1>
{_nav(username, csrf, "/label/disagreements")}
<p class="muted">{len(items)} photo(s) with different labels; generated {escape(iso(now))}.</p>
{body}""",
    )
