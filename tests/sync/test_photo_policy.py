"""Which full photos base wants (appliance/sync/photo_policy.py), on rows a real store wrote, and the config keys."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.config import Config, config_check, load_config
from appliance.result import Ranked, RetakeReason, UnknownReason, Verdict
from appliance.store import SqliteStore
from appliance.sync.photo_policy import PhotoPolicy, Want, in_sample, is_hard
from tests.helpers.collector import PHOTOS, diagnosis


def stored_row(store: SqliteStore, verdict: Verdict, reason=None, probability: float = 0.95, rid: str | None = None):
    made = replace(diagnosis(0), verdict=verdict, reason=reason, top=(Ranked("tomato__late_blight", probability),))
    return store.get(store.record(made, PHOTOS[0], device_id="pi-07", latency={}, record_id=rid).id)


@pytest.fixture
def store(tmp_path: Path):
    with SqliteStore.open(tmp_path / "diagnoses.sqlite3", tmp_path) as opened:
        yield opened


def test_hard_cases_are_not_sure_unknown_and_low_confidence_only(store: SqliteStore) -> None:
    policy = PhotoPolicy(mode="teaching", below=0.80, sample=0.0)
    cases = {
        "not sure": (stored_row(store, Verdict.RETAKE, RetakeReason.NOT_SURE, 0.4), Want.HARD),
        "other plant": (stored_row(store, Verdict.UNKNOWN, UnknownReason.OTHER_PLANT, 0.9), Want.HARD),
        "unknown condition": (stored_row(store, Verdict.UNKNOWN, UnknownReason.UNKNOWN_CONDITION, 0.99), Want.HARD),
        "low confidence": (stored_row(store, Verdict.DIAGNOSIS, None, 0.79), Want.HARD),
        "at the line": (stored_row(store, Verdict.DIAGNOSIS, None, 0.80), Want.NO),
        "confident": (stored_row(store, Verdict.DIAGNOSIS, None, 0.97), Want.NO),
        "dark": (stored_row(store, Verdict.RETAKE, RetakeReason.TOO_DARK, 0.0), Want.NO),
        "bright": (stored_row(store, Verdict.RETAKE, RetakeReason.TOO_BRIGHT, 0.0), Want.NO),
        "blurred": (stored_row(store, Verdict.RETAKE, RetakeReason.BLURRED, 0.0), Want.NO),
        "no leaf": (stored_row(store, Verdict.RETAKE, RetakeReason.NO_LEAF, 0.0), Want.NO),
    }
    assert {name: policy.want(row) for name, (row, _) in cases.items()} == {n: w for n, (_, w) in cases.items()}
    assert is_hard(cases["confident"][0], below=0.98)  # the line is the config's
    assert not is_hard(cases["low confidence"][0], below=0.5)


def test_the_sample_is_the_configured_share_and_the_same_on_every_pass() -> None:
    ids = [str(uuid.UUID(int=n, version=4)) for n in range(20_000)]
    chosen = [rid for rid in ids if in_sample(rid, 0.05)]
    assert 0.045 < len(chosen) / len(ids) < 0.055
    assert chosen == [rid for rid in ids if in_sample(rid, 0.05)]  # no chance involved: restarts agree
    assert set(chosen) <= {rid for rid in ids if in_sample(rid, 0.10)}  # a larger share keeps the earlier picks
    assert not any(in_sample(rid, 0.0) for rid in ids[:1000])
    assert all(in_sample(rid, 1.0) for rid in ids[:1000])


def test_easy_cases_in_the_sample_are_sent_and_modes_all_and_none(store: SqliteStore) -> None:
    sampled = next(
        str(uuid.UUID(int=n, version=4)) for n in range(1000) if in_sample(str(uuid.UUID(int=n, version=4)), 0.05)
    )
    easy = stored_row(store, Verdict.DIAGNOSIS, None, 0.97, rid=sampled)
    blurred = stored_row(store, Verdict.RETAKE, RetakeReason.BLURRED, 0.0)
    hard = stored_row(store, Verdict.UNKNOWN, UnknownReason.OTHER_PLANT, 0.9)
    assert PhotoPolicy(mode="teaching", sample=0.05).want(easy) is Want.SAMPLE
    assert PhotoPolicy(mode="teaching", sample=0.0).want(easy) is Want.NO
    assert all(PhotoPolicy(mode="all").want(row) is Want.ALL for row in (easy, blurred, hard))
    assert not any(PhotoPolicy(mode="none").wants(row) for row in (easy, blurred, hard))
    assert PhotoPolicy(mode="none").sends_any is False


# ---------------------------------------------------------------- the config keys


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_a_policy_from_the_config(tmp_path: Path) -> None:
    s = Config().sync
    assert (s.full_photos, s.full_photo_below, s.full_photo_sample, s.full_photo_mb_per_day) == (
        "teaching",
        0.80,
        0.05,
        100,
    )
    cfg = load_config(
        write(
            tmp_path,
            '[sync]\nfull_photos = "all"\nfull_photo_below = 0.5\nfull_photo_sample = 0\nfull_photo_mb_per_day = 0\n',
        )
    )
    assert PhotoPolicy.from_config(cfg) == PhotoPolicy(mode="all", below=0.5, sample=0.0)
    assert cfg.sync.full_photo_mb_per_day == 0


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('full_photos = "some"', "sync.full_photos", 'must be one of "teaching", "all", "none", got "some"'),
        ("full_photos = true", "sync.full_photos", "must be a string"),
        ("full_photo_below = 1.5", "sync.full_photo_below", "must be between 0 and 1, got 1.5"),
        ('full_photo_below = "0.8"', "sync.full_photo_below", "must be a number"),
        ("full_photo_sample = -0.1", "sync.full_photo_sample", "must be between 0 and 1, got -0.1"),
        ("full_photo_mb_per_day = -1", "sync.full_photo_mb_per_day", "must be at least 0, got -1"),
        ("full_photo_mb_per_day = 2.5", "sync.full_photo_mb_per_day", "must be a whole number"),
        (
            "full_photo_per_day = 5",
            "sync.full_photo_per_day",
            "unknown key; did you mean 'sync.full_photo_mb_per_day'?",
        ),
    ],
)
def test_bad_values_are_refused_by_name_with_what_is_allowed(tmp_path: Path, text: str, key: str, words: str) -> None:
    problems = config_check(write(tmp_path, f"[sync]\n{text}\n"))
    assert len(problems) == 1, problems
    assert f": {key}: " in problems[0] and words in problems[0], problems[0]
