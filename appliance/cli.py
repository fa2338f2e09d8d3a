"""The `appliance` command: diagnose photos, run the appliance, inspect its records."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

from . import __version__
from .errors import ApplianceError, ApplianceNotRunning, ConfigError, ImageError
from .vision.decode import IMAGE_SUFFIXES


def _expand(paths: list[str], recursive: bool = False) -> tuple[list[Path], int]:
    """Files as given; a folder stands for the photos in it (and in its subfolders with `recursive`).

    Also returns how many subfolders were left out, so that is said rather than silent.
    """
    out: list[Path] = []
    skipped = 0
    for raw in paths:
        p = Path(raw)
        if not p.is_dir():
            out.append(p)
            continue
        found = p.rglob("*") if recursive else p.iterdir()
        for q in sorted(found):
            if q.is_dir() and not recursive:
                skipped += 1
            elif q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES:
                out.append(q)
    return out, skipped


def _cut(text: str, width: int) -> str:
    """At most `width` characters, a cut marked by a trailing '…'."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _cut_name(name: str, width: int) -> str:
    """A file name cut in its middle: the end (a number, the suffix) is what tells photos apart."""
    if len(name) <= width:
        return name
    tail = (width - 1) // 2
    return name[: width - 1 - tail] + "…" + name[len(name) - tail :]


def _safe(text: str) -> str:
    """A file name fit for a terminal: control characters (hostile names) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _utf8(text: str) -> str:
    """Text that encodes as UTF-8: a file name's undecodable bytes (lone surrogates in Python) become \\xNN.

    So `diagnose --json` stays valid JSON, and a strict UTF-8 stdout does not stop the batch.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def cmd_diagnose(args: argparse.Namespace) -> int:
    from . import labels, words
    from .probabilities import shown_percent
    from .wiring import make_diagnoser

    cfg = _config(args)
    try:
        diagnoser = make_diagnoser(cfg, model=args.model, top_k=args.top_k, crops=args.crop)
    except ConfigError as exc:
        if args.crop is None:
            raise
        raise ConfigError(str(exc).replace("diagnosis.crops:", "--crop:", 1)) from None
    paths, skipped = _expand(args.images, args.recursive)
    if skipped:
        print(f"{skipped} subfolder(s) not looked into: add --recursive to include them", file=sys.stderr)
    if not paths:
        print("no photos given (or the folder holds none)", file=sys.stderr)
        return 2
    width = shutil.get_terminal_size((100, 24)).columns
    # Names as wide as they need, up to what leaves room for the other columns.
    name_w = max(12, min(max(len(_safe(p.name)) for p in paths), width - 62))
    counts = {"diagnosis": 0, "retake": 0, "unknown": 0, "failed": 0}
    if not args.json:
        if diagnoser.crops:
            language = cfg.device.language
            print(words.crops_line(tuple(labels.crop_name(c, language) for c in diagnoser.crops), language))
        print(f"{'PHOTO':<{name_w}}  {'VERDICT':<9}  {'CROP':<12}  {'CONDITION':<26}  CONFIDENCE")
    for path in paths:
        try:
            d = diagnoser.diagnose_file(path)
        except ImageError as exc:
            counts["failed"] += 1
            if args.json:
                print(json.dumps({"file": _utf8(str(path)), "error": _utf8(str(exc))}, ensure_ascii=False))
            else:
                print(f"{_cut_name(_safe(path.name), name_w):<{name_w}}  {'ERROR':<9}  {_safe(str(exc))}")
            continue
        counts[d.verdict.value] += 1
        if args.json:
            print(json.dumps(_json_result(path, d), ensure_ascii=False))
            continue
        # A confidence belongs to a diagnosis; for a retake or "I don't know this" it would read as one.
        conf = f"{shown_percent(d.best.probability):4d}%" if d.verdict.value == "diagnosis" else ""
        name = _cut_name(_safe(path.name), name_w)
        print(f"{name:<{name_w}}  {d.verdict.value:<9}  {_cut(d.crop, 12):<12}  {_cut(d.condition, 26):<26}  {conf}")
        for line in textwrap.wrap(d.advice, width=max(40, width - name_w - 4)):
            print(f"{'':<{name_w}}  {line}")
    if not args.json:
        done = f"{counts['diagnosis']} diagnosed, {counts['retake']} retake, "
        if counts["unknown"]:
            done += f"{counts['unknown']} unknown, "
        done += f"{counts['failed']} failed"
        print(f"\n{len(paths)} photo(s): {done}")
    return 1 if counts["failed"] else 0


def _json_result(path: Path, d) -> dict:
    return {
        "file": _utf8(str(path)),
        "verdict": d.verdict.value,
        "reason": d.reason.value if d.reason else None,
        "top_k": [{"slug": r.slug, "probability": r.probability} for r in d.top],
        "crop": d.crop,
        "condition": d.condition,
        "advice": d.advice,
        "crops": list(d.crops),
        "quality": d.to_dict()["quality"],
        "timings_ms": d.to_dict()["timings"],
        "model_version": d.model_version,
        "model_sha256": d.model_sha256,
    }


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import DEFAULT_REFERENCE, bench, format_report, zoo_gate
    from .classifier import default_model_path

    model = Path(args.model) if args.model else default_model_path()
    report = bench(
        model,
        Path(args.out),
        threads=tuple(args.threads),
        warmup=args.warmup,
        runs=args.runs,
        reference=Path(args.reference) if args.reference else DEFAULT_REFERENCE,
    )
    print(format_report(report))
    print(f"written to {args.out}")
    failed = [f"{r['engine']} failed: {r['error']}" for r in report["results"] if "error" in r]
    if args.gate:
        failed += zoo_gate(report)
    for line in failed:
        print(f"FAIL  {line}", file=sys.stderr)
    return 1 if failed else 0


def cmd_bench_appliance(args: argparse.Namespace) -> int:
    from .bench_appliance import format_report, run

    report = run(args.presses, Path(args.out), model=args.model, camera_size=args.camera_size)
    print(format_report(report))
    print(f"written to {args.out}")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from .selftest import FAIL, format_table, run_selftest

    cfg = _config(args)
    results = run_selftest(cfg, interactive=not args.non_interactive, press_timeout=args.timeout)
    print(format_table(results, args.config or "default config"))
    return 1 if any(c.result == FAIL for c in results) else 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import cmd_export as export

    return export(_config(args), Path(args.to) if args.to else None, args.full, args.auto, args.device)


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync import cmd_sync as sync

    return sync(_config(args))


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from .logsetup import setup_logging
    from .whereabouts import command_flags
    from .wiring import make_appliance, web_url

    cfg = _config(args)
    setup_logging(verbose=args.verbose)
    keyboard = cfg.button.kind == "simulated" and sys.stdin is not None and sys.stdin.isatty() and not args.no_keyboard
    app = make_appliance(cfg, stdin=keyboard)
    signal.signal(signal.SIGTERM, app.request_stop)
    signal.signal(signal.SIGINT, app.request_stop)
    if args.simulate:
        print(
            "Simulated appliance (no Pi needed).\n"
            f"  press:    {'Enter = short press (diagnose), l + Enter = long press (export); or ' if keyboard else ''}"
            f"`appliance press{command_flags(args.config, args.simulate)}` in another terminal\n"
            f"  screen:   {cfg.display_out_dir / 'latest.png'} (every frame numbered beside it)\n"
            f"  records:  {cfg.db_path}  (`appliance history{command_flags(args.config, args.simulate)}`)\n"
            + (f"  browser:  {url}\n" if (url := web_url(app)) else "")
            + "  stop:     Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
    return app.run()


def cmd_press(args: argparse.Namespace) -> int:
    from .hardware.sim_button import send_press
    from .whereabouts import command_flags, not_found

    cfg = _config(args)
    try:
        reply = send_press(cfg.control_socket_path, long=args.long, wait=args.wait, timeout=args.timeout)
    except ApplianceNotRunning:
        raise ApplianceNotRunning(
            not_found("no appliance listening at", cfg.control_socket_path, cfg, args.simulate)
            + f"; is `appliance run{command_flags(args.config, args.simulate)}` running?"
        ) from None
    print(reply)
    return 0 if reply.startswith(("ok", "pong")) else 1


def cmd_history(args: argparse.Namespace) -> int:
    from .store import SqliteStore
    from .store.history import format_json, format_table
    from .whereabouts import not_found

    cfg = _config(args)
    if not cfg.db_path.exists():  # never created by a read-only command
        print(f"no records yet: {not_found('no record store at', cfg.db_path, cfg, args.simulate)}", file=sys.stderr)
        return 0
    with SqliteStore.open(cfg.db_path, cfg.data_dir) as store:
        rows = store.recent(args.limit or None)
        if args.csv:  # photo statuses are read while the store is open
            from .export.exporter import diagnoses_csv

            sys.stdout.write(diagnoses_csv(store, rows, cfg.device.language))
            return 0
    if args.json:
        sys.stdout.write(format_json(rows))
    else:
        sys.stdout.write(format_table(rows, width=shutil.get_terminal_size((100, 24)).columns))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from .config import DEFAULT_CONFIG_PATH

    cfg = _config(args)  # raises ConfigError listing every problem
    if args.action == "check":
        from .wiring import check_crops

        where = args.config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else "built-in defaults")
        try:
            check_crops(cfg)  # the crops against the model's classes (loads the model only when crops are set)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        print(f"OK: {where}")
    else:
        sys.stdout.write(cfg.to_toml())
    return 0


def _config(args: argparse.Namespace):
    from .config import load_config

    return load_config(
        Path(args.config) if getattr(args, "config", None) else None, simulate=getattr(args, "simulate", False)
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="appliance", description="Offline plant-disease diagnosis appliance.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("diagnose", help="diagnose leaf photos and print crop, condition, confidence, advice")
    p.add_argument("images", nargs="+", help="photo files, or folders of photos")
    p.add_argument("-r", "--recursive", action="store_true", help="also the photos in the folders' subfolders")
    p.add_argument("--json", action="store_true", help="one JSON object per photo, one per line")
    p.add_argument("--top-k", type=int, default=3, help="how many ranked classes to report (default 3)")
    p.add_argument("--model", help="ONNX model to use instead of the configured one")
    p.add_argument(
        "--crop",
        action="append",
        metavar="NAME",
        help="choose among this crop's conditions only (repeat for several); overrides [diagnosis] crops",
    )
    p.add_argument("--config", help="config file (default /etc/leaf-appliance/config.toml if present)")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("bench", help="time the int8 model against its fp32 export (onnxruntime, OpenCV DNN)")
    p.add_argument("--model", help="int8 model (its fp32 twin is looked up beside it)")
    p.add_argument("--out", default="bench-results/model-bench.json", help="where to write the JSON figures")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure (default 1 2)")
    p.add_argument("--warmup", type=_count, default=10, help="untimed runs first, per engine (default 10)")
    p.add_argument("--runs", type=_count, default=100, help="timed runs per engine and thread count (default 100)")
    p.add_argument(
        "--reference",
        help="the speed reference: the ONNX Model Zoo int8 MobileNetV2 (default ../shared/weights/...)",
    )
    p.add_argument("--gate", action="store_true", help="exit 1 if int8 p50 is over 1.1x the reference model's")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("bench-appliance", help="time press -> result on the simulated appliance, start-up, memory")
    p.add_argument("--presses", type=_count, default=50, help="button presses to time (default 50; >= 300 for RSS)")
    p.add_argument("--model", help="ONNX model to use instead of the shipped one")
    p.add_argument(
        "--camera-size", default="", metavar="WxH", help="frames this large from the simulated camera, e.g. 2304x1296"
    )
    p.add_argument("--out", default="bench-results/appliance-bench.json", help="where to write the JSON figures")
    p.set_defaults(func=cmd_bench_appliance)

    p = sub.add_parser("selftest", help="check camera, model, storage, display, LEDs and button after assembly")
    _common(p)
    p.add_argument("--non-interactive", action="store_true", help="skip the button check (no one to press it)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the button press")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("export", help="export the records and photos to a USB stick or a folder, verified")
    _common(p)
    p.add_argument("--to", help="export into this folder instead of the first USB stick found")
    p.add_argument("--full", action="store_true", help="everything, not only what this stick has not received yet")
    p.add_argument("--auto", action="store_true", help="run by the USB-insert hook: only if auto-export is enabled")
    p.add_argument("--device", help="the block device that was inserted (from the udev hook), e.g. /dev/sda1")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sync", help="send the records not yet at base to the fleet collector, now")
    _common(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("run", help="run the appliance (the systemd service runs this)")
    _common(p)
    p.add_argument("--no-keyboard", action="store_true", help="simulation: do not read presses from the terminal")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("press", help="press the simulated appliance's button (through its control socket)")
    _common(p)
    p.add_argument("--long", action="store_true", help="a long press (export to USB)")
    p.add_argument("--wait", action="store_true", help="wait for the result and print its timings")
    p.add_argument("--timeout", type=float, default=30.0, help="with --wait: seconds to wait for the result (30)")
    p.set_defaults(func=cmd_press)

    p = sub.add_parser("history", help="list recent diagnoses from the record store")
    _common(p)
    p.add_argument(
        "-n", "--limit", type=_count, default=20, help="how many of the newest records (default 20; 0 = all of them)"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines, one record a line (as diagnose --json)")
    fmt.add_argument(
        "--csv", action="store_true", help="the USB export's diagnoses.csv: same columns, BOM, guarded cells"
    )
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("config", help="check the config file, or show the effective config with defaults")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, about in (
        ("check", "check the config file: every problem listed, with 'did you mean'; exit 2 on any"),
        ("show", "print the effective config, every key with its default and a comment"),
    ):
        q = actions.add_parser(action, help=about, description=about)
        _common(q)
        q.set_defaults(func=cmd_config)
    return ap


def _count(text: str) -> int:
    """A whole number >= 0 for argparse: -5 is a clear usage error, not a traceback."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, got {value}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config file (default /etc/leaf-appliance/config.toml if present)")
    p.add_argument("--simulate", action="store_true", help="simulated camera, button, LEDs and display")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `appliance diagnose --json ... | head`: the reader has what it wanted; end quietly, and keep
        # Python from printing a second error when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a program ended by SIGPIPE
