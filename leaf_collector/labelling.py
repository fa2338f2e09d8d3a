"""The labelling queue's SQL: which field photos to show, the classes to offer, labels, disagreements.

A photo is shown with the first diagnosis that names it (the same bytes sent twice share one
field photo). "Hardest first": photos the device did not know, or was not sure enough to
answer, then the lowest confidence. Photos someone else has labelled come after every
unlabelled one, as second opinions, without showing the first label (it would bias the second).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

MARKS = {"not_a_leaf": "Not a leaf", "other_plant": "Other plant", "unusable": "Unusable photo"}
# consensus.BACKGROUNDS in words, as the labelling page asks it.
BACKGROUND_WORDS = {"natural": "On the plant", "plain": "Picked: on paper, cloth or a table"}
CLASS_SLUG = re.compile(r"[a-z0-9_]+__[a-z0-9_]+")
_SLUG_SQL = "^[a-z0-9_]+__[a-z0-9_]+$"

_NAMED = """
SELECT DISTINCT ON (f.sha256) f.sha256, d.id AS diagnosis_id, d.device_id, d.created_at, d.verdict, d.reason,
       d.top1_slug, d.top1_probability, d.crop, d.condition, d.crops, d.topk
FROM field_photos f JOIN diagnoses d ON d.photo_sha256 = f.sha256
ORDER BY f.sha256, d.received_at, d.id
"""

_QUEUE = f"""
WITH named AS ({_NAMED}),
counted AS (
    SELECT n.*, (SELECT count(*) FROM labels l WHERE l.photo_sha256 = n.sha256) AS labels
    FROM named n
    WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.photo_sha256 = n.sha256 AND l.username = %(user)s)
)
SELECT *, count(*) FILTER (WHERE labels = 0) OVER () AS unlabelled, count(*) OVER () AS total
FROM counted
ORDER BY labels > 0,
         CASE WHEN verdict = 'unknown' OR (verdict = 'retake' AND reason = 'not_sure') THEN 0 ELSE 1 END,
         top1_probability ASC NULLS FIRST, created_at, sha256
LIMIT %(limit)s
"""

_VOCABULARY = f"""
WITH seen AS (
    SELECT top1_slug AS slug FROM diagnoses WHERE top1_slug IS NOT NULL
    UNION SELECT e ->> 'slug' FROM diagnoses, jsonb_array_elements(topk) e WHERE jsonb_typeof(e) = 'object'
    UNION SELECT label FROM labels
),
named AS (
    SELECT DISTINCT ON (top1_slug) top1_slug AS slug, crop, condition FROM diagnoses
    WHERE verdict = 'diagnosis' AND crop <> '' AND condition <> '' AND top1_slug IS NOT NULL
    ORDER BY top1_slug, received_at DESC
)
SELECT s.slug, n.crop, n.condition FROM seen s LEFT JOIN named n ON n.slug = s.slug
WHERE s.slug ~ '{_SLUG_SQL}'
"""


@dataclass(frozen=True)
class ClassName:
    slug: str
    crop: str
    condition: str

    @property
    def text(self) -> str:
        return f"{self.crop}: {self.condition}"


def derived_name(slug: str) -> ClassName:
    """Words from the slug itself, for a class no diagnosis has named yet."""
    crop, _, condition = slug.partition("__")
    return ClassName(slug, crop.replace("_", " ").capitalize(), condition.replace("_", " ").capitalize())


def label_text(label: str, names: dict[str, ClassName]) -> str:
    if label in MARKS:
        return MARKS[label]
    return (names.get(label) or derived_name(label)).text


def _rows(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [c.name for c in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    for key in ("crops", "topk"):
        if isinstance(item.get(key), str):
            item[key] = json.loads(item[key])
    return item


def queue(conn: psycopg.Connection, username: str, limit: int) -> tuple[list[dict[str, Any]], int, int]:
    """(photos to show, how many unlabelled, how many in all) for this person."""
    items = [_decode(r) for r in _rows(conn.execute(_QUEUE, {"user": username, "limit": limit}))]
    if not items:
        return [], 0, 0
    return items, int(items[0]["unlabelled"]), int(items[0]["total"])


def vocabulary(conn: psycopg.Connection) -> dict[str, ClassName]:
    """Every class slug the collector has seen (diagnoses' first choices, their top-k, labels), named."""
    names: dict[str, ClassName] = {}
    for slug, crop, condition in conn.execute(_VOCABULARY).fetchall():
        names[slug] = ClassName(slug, crop, condition) if crop and condition else derived_name(slug)
    return dict(sorted(names.items(), key=lambda kv: (kv[1].crop.casefold(), kv[1].condition.casefold())))


def photo_exists(conn: psycopg.Connection, sha256: str) -> bool:
    return conn.execute("SELECT 1 FROM field_photos WHERE sha256 = %s", (sha256,)).fetchone() is not None


def store_label(conn: psycopg.Connection, sha256: str, username: str, label: str, background: str | None) -> None:
    """One label per photo and person: labelling again replaces that person's earlier label and background."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO labels (photo_sha256, username, label, background, labelled_at) VALUES (%s, %s, %s, %s, now())
            ON CONFLICT (photo_sha256, username)
            DO UPDATE SET label = excluded.label, background = excluded.background, labelled_at = now()
            """,
            (sha256, username, label, background),
        )


def disagreements(conn: psycopg.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """Photos whose labels differ, most recently labelled first: who said what, where the leaf is, and when."""
    cur = conn.execute(
        f"""
        WITH named AS ({_NAMED}),
        split AS (
            SELECT photo_sha256, max(labelled_at) AS last FROM labels
            GROUP BY photo_sha256 HAVING count(DISTINCT label) > 1
        )
        SELECT n.*, s.last,
               (SELECT jsonb_agg(jsonb_build_array(l.username, l.label, l.labelled_at, l.background)
                                 ORDER BY l.labelled_at)
                FROM labels l WHERE l.photo_sha256 = s.photo_sha256) AS said
        FROM split s JOIN named n ON n.sha256 = s.photo_sha256
        ORDER BY s.last DESC, n.sha256 LIMIT %s
        """,
        (limit,),
    )
    items = [_decode(r) for r in _rows(cur)]
    for item in items:
        item["said"] = [(who, label, datetime.fromisoformat(when), bg) for who, label, when, bg in item["said"]]
    return items


def device_names_photo(conn: psycopg.Connection, device_id: str, sha256: str) -> bool:
    """Whether the device has sent a record naming this full photo (it may fetch its own photo back)."""
    row = conn.execute(
        "SELECT 1 FROM diagnoses WHERE device_id = %s AND photo_sha256 = %s LIMIT 1", (device_id, sha256)
    ).fetchone()
    return row is not None


def device_may_see_diagnosis_photo(conn: psycopg.Connection, device_id: str, diagnosis_id: uuid.UUID) -> bool:
    """The same rule for /photos/<id>/photo.jpg: the device sent that record, or one naming the same bytes."""
    row = conn.execute(
        """
        SELECT 1 FROM diagnoses d
        JOIN diagnoses x ON x.id = d.id OR (d.photo_sha256 <> '' AND x.photo_sha256 = d.photo_sha256)
        WHERE d.id = %s AND x.device_id = %s LIMIT 1
        """,
        (diagnosis_id, device_id),
    ).fetchone()
    return row is not None
