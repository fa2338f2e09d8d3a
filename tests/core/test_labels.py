from __future__ import annotations

import tomllib

from appliance import labels
from appliance.classifier import OnnxClassifier
from tests.helpers.paths import MODEL


def test_every_model_class_has_words():
    classes = OnnxClassifier(MODEL, threads=1).info.classes
    missing = [c for c in classes if c not in labels.known_slugs()]
    assert missing == []
    for slug in classes:
        words = labels.label(slug)
        assert words.condition and words.advice
        assert words.healthy == slug.endswith("__healthy")


def test_translations_extend_the_same_file(monkeypatch):
    table = tomllib.loads(
        '[tomato__late_blight.en]\ncrop="Tomato"\ncondition="Late blight"\nadvice="Act."\n'
        '[tomato__late_blight.fr]\ncrop="Tomate"\ncondition="Mildiou"\n'
    )
    monkeypatch.setattr(labels, "_table", lambda: table)
    fr = labels.label("tomato__late_blight", "fr-CA")
    assert (fr.crop, fr.condition, fr.advice) == ("Tomate", "Mildiou", "Act.")  # advice falls back to English
    assert labels.label("tomato__late_blight", "sw").condition == "Late blight"


def test_a_class_added_later_gets_words_from_its_slug():
    words = labels.label("squash__powdery_mildew")
    assert (words.crop, words.condition, words.healthy) == ("Squash", "Powdery mildew", False)
    assert labels.label("peach__healthy").healthy
