"""`appliance sync`: send every waiting diagnosis now and say what happened."""

from __future__ import annotations

import sys
from typing import TextIO

from appliance.config import Config
from appliance.errors import SyncSetupError
from appliance.store.sqlite_store import SqliteStore, count_unsynced
from appliance.sync.session import PassReport, SyncSession, check_owner, client_from_config
from leaf_wire.client import (
    CollectorError,
)


def cmd_sync(cfg: Config, *, out: TextIO | None = None) -> int:
    """Send every waiting diagnosis now and say what happened. 0: all sent; 1: some left; 2: not set up."""
    out = out or sys.stdout
    if not cfg.sync.enabled:
        print("note: background sync is off ([sync] enabled = false); sending once now", file=out)
    try:
        client = client_from_config(cfg)
    except SyncSetupError as exc:
        print(f"sync: {exc}", file=out)
        return 2
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        waiting = count_unsynced(cfg.db_path)
        try:
            info = check_owner(client, cfg)
        except CollectorError as exc:
            print(f"sync: {exc}\n{waiting} diagnoses waiting; nothing sent", file=out)
            return 1
        except SyncSetupError as exc:
            print(f"sync: {exc}; nothing sent", file=out)
            return 2
        owner = info.device_id
        session = SyncSession.for_config(store, client, cfg)
        session.apply_limits(info)
        if waiting == 0 and not session.photos_pending():
            print(f"nothing waiting; {client.base_url} accepts this device's token ({owner})", file=out)
            return 0
        print(f"{waiting} diagnoses waiting; sending to {client.base_url} as {owner}", file=out)
        report = PassReport()

        def progress(r: PassReport) -> None:
            print(f"  batch {r.batches}: {r.sent} acknowledged so far", file=out)

        try:
            session.push_pending(report, on_batch=progress)
            failure = None
        except CollectorError as exc:
            failure = exc
        left = count_unsynced(cfg.db_path)
    print(f"sent {report.sent}: {report.stored} stored, {report.duplicates} already there; {left} waiting", file=out)
    if report.without_photo:
        print(f"{report.without_photo} sent without their photo (missing, damaged or too large)", file=out)
    for line in photo_lines(report):
        print(line, file=out)
    for rid, reason in report.refused.items():
        print(f"refused by the collector, kept here: {rid}: {reason}", file=out)
    if failure is not None:
        print(f"sync stopped: {failure}\nthe rest is sent next time (nothing is lost or sent twice)", file=out)
        return 1
    return 1 if report.refused else 0


def photo_lines(report: PassReport) -> list[str]:
    """What the photo pass did, for people: nothing when it had nothing to do."""
    lines = []
    done = report.photos_sent or report.photos_deferred or report.photos_skipped
    if done:
        lines.append(
            f"full photos: {report.photos_sent} sent ({report.photo_duplicates} already at base), "
            f"{report.photos_deferred} left for later, {len(report.photos_skipped)} skipped"
        )
    if report.photo_quota_full or report.photo_problem:
        lines.append(f"photos held back: {report.photo_quota_full or report.photo_problem}; records still sync")
    elif report.photos_deferred_until is not None:
        lines.append(
            f"today's photo budget (full_photo_mb_per_day) is spent; the rest go from "
            f"{report.photos_deferred_until:%Y-%m-%d %H:%M} UTC"
        )
    lines.extend(f"photo not sent: {rid}: {why}" for rid, why in report.photos_skipped.items())
    return lines
