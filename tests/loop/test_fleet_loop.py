"""Issue 13 end to end: the fleet teaches the model.

Two simulated appliances (the real daemon, `appliance run`, its camera replaying held-out apple
field photos from ../shared) diagnose, store and sync to a real collector on PostgreSQL; the
full photos base wants follow. Two agronomists label them in real headless Chromium (sign in,
confirm or choose, a disagreement), the field pack is exported with the collector's command, a
smoke-scale training run consumes it, and the comparison with the shipped model runs (a smoke
model is always worse, so it must be refused, and the shipped files stay as they are).

Prints one COUNTS line: photos sent / stored / duplicates / labelled / exported / used in
training / held out.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.browser import headless_chromium
from tests.helpers.browser import submit as _submit
from tests.helpers.collector import in_process_collector, issue_token, write_token
from tests.helpers.figures import report_figure
from tests.helpers.labelling import add_account

REPO = Path(__file__).resolve().parents[2]
PHOTOS_PER_DEVICE = 10
WEEDS_PER_ORCHARD = 3  # other plants the orchard's appliance also sees: "I don't know this plant", hard cases
PASSWORD = "correct horse battery"
OTHER_PLANT = "other__plant"


def held_out_field_photos(shared_root: Path, count: int, source: str = "field-apple") -> list[tuple[Path, str]]:
    """Test-split field photos (never trained or tuned on), the classes in turn, with their slug."""
    by_slug: dict[str, list[tuple[str, str]]] = {}
    with (REPO / "models" / "split-manifest.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == "test" and row["source"] == source:
                by_slug.setdefault(row["slug"], []).append((row["sha256"], row["file"]))
    picked: list[tuple[Path, str]] = []
    queues = {slug: sorted(rows) for slug, rows in sorted(by_slug.items())}
    while len(picked) < count:
        for slug, rows in queues.items():
            if rows and len(picked) < count:
                picked.append((shared_root / rows.pop(0)[1], slug))
    return picked


def _device(tmp: Path, name: str, url: str, token: str, photos: list[tuple[Path, str]], extra: str) -> Path:
    home = tmp / name
    camera = home / "camera"
    camera.mkdir(parents=True)
    for n, (path, _) in enumerate(photos):  # the simulated camera replays them in name order
        (camera / f"{n:03d}{path.suffix.lower()}").symlink_to(path)
    token_file = write_token(home / "sync.token", token)
    config = home / "config.toml"
    config.write_text(
        f"""[device]
id = "{name}"
data_dir = "{home / "data"}"

[camera]
kind = "simulated"
folder = "{camera}"

[button]
kind = "simulated"

[leds]
kind = "simulated"

[display]
kind = "simulated"

[sync]
enabled = false
url = "{url}"
token_file = "{token_file}"
{extra}
""",
        encoding="utf-8",
    )
    return config


def _run_device(config: Path, presses: int) -> list[str]:
    """The real daemon: start it, press its button `presses` times (waiting for each result), stop it."""
    from appliance.config import load_config
    from appliance.hardware.sim_button import send_press

    cfg = load_config(config)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "appliance", "run", "--config", str(config), "--no-keyboard"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while not cfg.control_socket_path.exists():
            assert daemon.poll() is None, daemon.stdout.read() if daemon.stdout else ""
            assert time.monotonic() < deadline, "the appliance did not start in 120 s"
            time.sleep(0.2)
        answers = []
        for _ in range(presses):
            answers.append(send_press(cfg.control_socket_path, wait=True, timeout=90))
            time.sleep(0.3)  # let the result screen settle before the next press is taken
        return answers
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


def _sync(config: Path) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "appliance", "sync", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _records(config: Path) -> list[dict[str, object]]:
    db = config.parent / "data" / "diagnoses.sqlite3"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM diagnoses ORDER BY rowid")]


def _base(dsn: str) -> dict[str, int]:
    from leaf_collector.db import connect

    with connect(dsn) as conn:
        photos, distinct = conn.execute("SELECT count(*), count(DISTINCT sha256) FROM field_photos").fetchone()
        records = conn.execute("SELECT count(*) FROM diagnoses").fetchone()[0]
        labelled = conn.execute("SELECT count(DISTINCT photo_sha256) FROM labels").fetchone()[0]
    return {"photos": photos, "distinct": distinct, "records": records, "labelled": labelled}


def _sign_in(driver, url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    _submit(driver, driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]"))
    assert driver.current_url.endswith("/label"), driver.page_source[:500]


def _manifest_backgrounds(shared_root: Path) -> dict[Path, str]:
    """Each shared photo's background as the split manifest has it (field apple: natural or plain)."""
    with (REPO / "models" / "split-manifest.csv").open(newline="", encoding="utf-8") as fh:
        return {shared_root / row["file"]: row["background"] for row in csv.DictReader(fh)}


def _label_queue(
    driver, truth: dict[str, str], seen: dict[str, str], *, limit: int | None = None, second: bool = False
) -> list[str]:
    """Label what the queue shows, with the true class and background (by the photo's sha256); returns the shas.

    A true class the page does not offer (no device ever named it) is left for later: counted, not forced.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    done: list[str] = []
    skipped: set[str] = set()
    while limit is None or len(done) < limit:
        sections = [
            s
            for s in driver.find_elements(By.CSS_SELECTOR, "section.photo")
            if s.get_attribute("id").removeprefix("photo-") not in skipped and ("Second opinion" in s.text) == second
        ]
        if not sections:
            break
        section = sections[0]
        sha = section.get_attribute("id").removeprefix("photo-")
        slug = truth[sha]
        if seen.get(sha) in ("natural", "plain"):  # where the leaf is, as the agronomist sees it
            section.find_element(By.CSS_SELECTOR, f"input[name=background][value={seen[sha]}]").click()
        if slug == OTHER_PLANT:  # the page's mark for a plant no crop of ours
            _submit(driver, section.find_element(By.XPATH, ".//button[@value='other_plant']"))
            done.append(sha)
            continue
        select = Select(section.find_element(By.CSS_SELECTOR, "form.label select"))
        values = [o.get_attribute("value") for o in select.options]
        if slug not in values:
            skipped.add(sha)
            continue
        select.select_by_value(slug)
        _submit(driver, section.find_element(By.CSS_SELECTOR, "button.choose"))
        done.append(sha)
    return done


def test_the_fleet_teaches_the_model(dsn: str, tmp_path: Path, shared_root: Path, shared_weights: Path) -> None:
    from leaf_collector.db import connect

    photos = held_out_field_photos(shared_root, 2 * PHOTOS_PER_DEVICE)
    weeds = held_out_field_photos(shared_root, WEEDS_PER_ORCHARD, source="deepweeds")
    base_photos = tmp_path / "base-photos"
    server = in_process_collector(dsn, photo_dir=base_photos)
    try:
        devices = {
            # an orchard's appliance, set to apple, sending the teaching photos (the hard ones and a sample)
            "pi-orchard-1": (photos[0::2] + weeds, 'full_photos = "teaching"\n\n[diagnosis]\ncrops = ["apple"]'),
            # a field adviser's, every crop, sending every full photo
            "pi-adviser-2": (photos[1::2], 'full_photos = "all"'),
        }
        truth: dict[str, str] = {}  # photo sha256 at base -> the folder's class
        seen: dict[str, str] = {}  # photo sha256 at base -> its background in the shared folder's images.csv
        background_of = _manifest_backgrounds(shared_root)
        wanted = 0
        for name, (shots, extra) in devices.items():
            config = _device(tmp_path, name, server.url, issue_token(dsn, name), shots, extra)
            answers = _run_device(config, len(shots))
            assert len(answers) == len(shots) and not any(a.startswith("error") for a in answers), answers
            out = _sync(config)
            assert f"sent {len(shots)}: {len(shots)} stored" in out, out
            records = _records(config)
            assert len(records) == len(shots)
            for record, (path, slug) in zip(records, shots, strict=True):
                truth[str(record["photo_sha256"])] = slug
                seen[str(record["photo_sha256"])] = background_of[path]
            from appliance.config import load_config
            from appliance.sync.photo_policy import PhotoPolicy

            policy = PhotoPolicy.from_config(load_config(config))
            wanted += sum(1 for r in records if policy.wants(r))
            again = _sync(config)  # nothing new: nothing is sent twice
            assert "nothing waiting" in again, again
        base = _base(dsn)
        files = [p for p in base_photos.rglob("*.jpg") if not p.name.startswith(".")]
        assert base["records"] == 2 * PHOTOS_PER_DEVICE + WEEDS_PER_ORCHARD
        assert wanted > PHOTOS_PER_DEVICE  # the adviser's every photo and the orchard's hard cases (its weeds)
        assert base["photos"] == wanted == len(files) == base["distinct"]  # every wanted photo once, on disk once
        sent, stored, duplicates = wanted, base["photos"], len(files) - base["distinct"]

        # Two agronomists label through the page, in Chromium
        add_account(dsn, "ana", PASSWORD)
        add_account(dsn, "ben", PASSWORD)
        with headless_chromium(tmp_path / "profile") as driver:
            from selenium.webdriver.common.by import By

            driver.set_window_size(1280, 1100)
            _sign_in(driver, server.url, "ana")
            ana = _label_queue(driver, truth, seen)
            assert ana, "the queue offered no photo whose true class could be chosen"
            _submit(driver, driver.find_element(By.ID, "logout"))
            _sign_in(driver, server.url, "ben")
            ben_agrees = _label_queue(driver, truth, seen, limit=1, second=True)
            first = driver.find_elements(By.CSS_SELECTOR, "section.photo")
            disputed = next(
                s for s in first if "Second opinion" in s.text and s.get_attribute("id")[6:] not in ben_agrees
            )
            disputed_sha = disputed.get_attribute("id").removeprefix("photo-")
            _submit(driver, disputed.find_element(By.XPATH, ".//button[@value='unusable']"))
            driver.get(server.url + "/label/disagreements")
            assert driver.find_elements(By.ID, f"photo-{disputed_sha}"), driver.page_source[:800]
        with connect(dsn) as conn:
            labels = conn.execute("SELECT photo_sha256, username, label FROM labels").fetchall()
        stored_as = {OTHER_PLANT: "other_plant"}  # a mark, not a class, in the labels table
        assert {(sha, "ana", stored_as.get(truth[sha], truth[sha])) for sha in ana} <= set(labels)
        assert (disputed_sha, "ben", "unusable") in labels
        labelled = _base(dsn)["labelled"]

        # The field pack, with the collector's own command
        pack = tmp_path / "field-pack"
        run = subprocess.run(
            [sys.executable, "-m", "leaf_collector", "export-field-pack", str(pack), "--dsn", dsn,
             "--photo-dir", str(base_photos)],
            capture_output=True, text=True, timeout=300, cwd=REPO,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        manifest = json.loads((pack / "pack.json").read_text(encoding="utf-8"))
        counts = manifest["counts"]
        assert counts["exported"] == len(ana) - 1 and counts["disagreements"] == 1
        check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=pack, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        with (pack / "provenance.csv").open(newline="", encoding="utf-8") as fh:
            exported = {r["sha256"]: r["background"] for r in csv.DictReader(fh)}
        said = {sha: seen[sha] if seen[sha] in ("natural", "plain") else "" for sha in exported}
        assert exported == said and {"natural", "plain"} <= set(said.values())  # the page's choice reached the pack
    finally:
        server.close()

    # A smoke-scale training run consumes it; the comparison with the shipped model runs and refuses it
    out = tmp_path / "models-out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    build = subprocess.run(
        [sys.executable, "-m", "models.pipeline.build", "--smoke", "--field-pack", str(pack), "--out", str(out),
         "--data", str(shared_root), "--weights", str(shared_weights), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=1200, cwd=REPO, env=env,
    )  # fmt: skip
    assert build.returncode == 3, build.stdout[-3000:] + build.stderr[-3000:]  # worse than the shipped model
    comparison = json.loads((out / "candidate" / "field-pack-comparison.json").read_text(encoding="utf-8"))
    assert not (out / "leafnet-int8.onnx").exists()  # nothing shipped
    by_background = comparison["after"]["field_by_background"]  # the before/after, read by background
    assert sum(r["photos"] for r in by_background.values()) == comparison["after"]["field"]["photos"]
    used = comparison["pack"]
    assert used["held_out"] == counts["held_out"] and used["train"] + used["val"] == counts["train"]
    report_figure(
        f"COUNTS [fleet loop] photos sent={sent} stored={stored} duplicates={duplicates} labelled={labelled} "
        f"exported={counts['exported']} used_in_training={used['train'] + used['val']} held_out={used['held_out']}"
    )
    print(build.stdout[-2000:])
