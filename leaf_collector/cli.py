"""`leaf-collector`: serve the fleet API and page, apply migrations, manage device tokens, print the nginx
config that fronts it, run the load test, export the labelled field photos for training.

The database is named by --dsn or $LEAF_COLLECTOR_DSN (a libpq connection string or URI); the
environment keeps a password out of the process list. libpq's own PG* variables work too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from leaf_collector import __version__
from leaf_collector.errors import CollectorFailure
from leaf_wire import protocol

DSN_ENV = "LEAF_COLLECTOR_DSN"
_DEFAULT_QUOTA_MB = 2048  # app.Limits.photo_quota_mb (not imported here: `--help` stays light)


def _dsn(args: argparse.Namespace) -> str:
    dsn = args.dsn if args.dsn is not None else os.environ.get(DSN_ENV, "")
    if not dsn and not os.environ.get("PGHOST") and not os.environ.get("PGDATABASE"):
        raise CollectorFailure(
            f"no database given: pass --dsn 'postgresql://USER:PASSWORD@HOST/DBNAME' or set {DSN_ENV} "
            f"(or libpq's PGHOST/PGDATABASE)"
        )
    return dsn


def cmd_serve(args: argparse.Namespace) -> int:
    from leaf_collector.app import Limits
    from leaf_collector.server import ServeOptions, parse_listen, serve

    host, port = parse_listen(args.listen)
    if args.photo_quota_mb < 0:
        raise CollectorFailure(f"--photo-quota-mb must be 0 or more, got {args.photo_quota_mb}")
    limits = Limits(
        max_request_bytes=int(args.max_request_mb * 1024 * 1024),
        rate_per_minute=args.rate_per_minute,
        burst=args.burst,
        photo_quota_mb=args.photo_quota_mb,
    )
    serve(
        ServeOptions(
            dsn=_dsn(args),
            host=host,
            port=port,
            threads=args.threads,
            limits=limits,
            photo_dir=args.photo_dir,
            trusted_proxy=args.trusted_proxy,
        )
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from leaf_collector.db import migrate
    from leaf_collector.migrations import latest_version

    applied = migrate(_dsn(args))
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema is at version {latest_version()}")
    else:
        print(f"schema already at version {latest_version()}; nothing to do")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from leaf_collector import tokens
    from leaf_collector.db import connect, migrate

    dsn = _dsn(args)
    migrate(dsn)
    with connect(dsn) as conn:
        if args.token_command == "issue":
            token, replaced = tokens.issue(conn, args.device_id)
            print(token)
            note = f"; the previous token of {args.device_id} no longer works" if replaced else ""
            print(
                f"token for {args.device_id} (shown once{note}). On the device, as root:\n"
                f"  install -m 600 -o leaf-appliance -g leaf-appliance /dev/stdin \\\n"
                f"      /var/lib/leaf-appliance/sync.token      # paste the token, Enter, Ctrl-D\n"
                f'and set [device] id = "{args.device_id}" and [sync] enabled/url in its config.',
                file=sys.stderr,
            )
            return 0
        if args.token_command == "revoke":
            if tokens.revoke(conn, args.device_id):
                print(f"revoked the token of {args.device_id}; its requests are refused from now on")
                return 0
            print(f"{args.device_id} has no active token (unknown device, or already revoked)", file=sys.stderr)
            return 1
        rows = tokens.list_devices(conn)
        if not rows:
            print("no devices yet: leaf-collector token issue DEVICE_ID")
            return 0
        width = max(len("DEVICE"), *(len(r.device_id) for r in rows))
        print(f"{'DEVICE':<{width}}  {'TOKEN':<7}  {'ISSUED (UTC)':<16}  {'LAST SEEN (UTC)':<16}  RECORDS")
        for r in rows:
            seen = f"{r.last_seen_at:%Y-%m-%d %H:%M}" if r.last_seen_at else "never"
            state = "active" if r.active else "revoked"
            print(f"{r.device_id:<{width}}  {state:<7}  {r.issued_at:%Y-%m-%d %H:%M}  {seen:<16}  {r.records}")
        return 0


def cmd_nginx_config(args: argparse.Namespace) -> int:
    from pathlib import Path

    from leaf_collector.nginx import SiteOptions, site_config, standalone_config

    options = SiteOptions(
        listen=args.listen, upstream=args.upstream, max_body_bytes=int(args.max_request_mb * 1024 * 1024)
    )
    if args.standalone:
        print(standalone_config(Path(args.standalone).resolve(), options), end="")
    else:
        print(site_config(options), end="")
    return 0


# ---- accounts of the people who label (issue 13) --------------------------------------------


def _new_password(args: argparse.Namespace) -> str:
    """From stdin (scripts, tests: one line) or asked twice at the terminal, never from the command line."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass(f"password for {args.username}: ")
    if getpass.getpass("the same again: ") != first:
        raise CollectorFailure("the two passwords differ; nothing was changed")
    return first


def cmd_account(args: argparse.Namespace) -> int:
    from leaf_collector import accounts
    from leaf_collector.db import connect, migrate

    dsn = _dsn(args)
    migrate(dsn)
    with connect(dsn) as conn:
        if args.account_command == "add":
            accounts.create(conn, args.username, _new_password(args))
            print(f"account {args.username} made; it signs in at /login on the collector's page")
            return 0
        if args.account_command == "password":
            if accounts.set_password(conn, args.username, _new_password(args)):
                print(f"new password for {args.username}: its sessions ended, it signs in with the new one")
                return 0
            print(
                f"{args.username} is not an enabled account (unknown, or disabled: `account enable` sets a new "
                "password and lets it sign in again); nothing was changed",
                file=sys.stderr,
            )
            return 1
        if args.account_command == "enable":
            if accounts.enable(conn, args.username, _new_password(args)):
                print(f"enabled {args.username} with a new password; its labels are as they were")
                return 0
            print(f"{args.username} is not a disabled account (unknown, or enabled already)", file=sys.stderr)
            return 1
        if args.account_command == "disable":
            if accounts.disable(conn, args.username):
                print(f"disabled {args.username}: its sessions ended, it can no longer sign in")
                return 0
            print(f"{args.username} is not an enabled account (unknown, or already disabled)", file=sys.stderr)
            return 1
        rows = accounts.list_accounts(conn)
        if not rows:
            print("no accounts yet: leaf-collector account add NAME")
            return 0
        width = max(len("ACCOUNT"), *(len(r.username) for r in rows))
        print(f"{'ACCOUNT':<{width}}  {'STATE':<8}  {'CREATED (UTC)':<16}  LABELS")
        for r in rows:
            state = "disabled" if r.disabled_at else "enabled"
            print(f"{r.username:<{width}}  {state:<8}  {r.created_at:%Y-%m-%d %H:%M}  {r.labels}")
        return 0


def add_account_commands(sub, with_dsn) -> None:  # type: ignore[no-untyped-def]
    account = sub.add_parser(
        "account", help="add, disable, enable, list the accounts that label field photos, or set a new password"
    )
    account_sub = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    for action, text in (  # each takes a new password
        ("add", "make an account (the password is asked twice)"),
        ("password", "a new password for an account (asked twice); ends its sessions"),
        ("enable", "let a disabled account sign in again, with a new password (asked twice)"),
    ):
        changed = with_dsn(account_sub.add_parser(action, help=text))
        changed.add_argument("username", help="1-64 characters of a-z 0-9 . _ -")
        changed.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    disable = with_dsn(account_sub.add_parser("disable", help="stop an account signing in; ends its sessions"))
    disable.add_argument("username")
    with_dsn(account_sub.add_parser("list", help="accounts, their state and how many labels each gave"))
    account.set_defaults(func=cmd_account)


# ---- devices' photo quotas (issue 13) -----------------------------------------------------


def cmd_device(args: argparse.Namespace) -> int:
    """`device quota DEVICE_ID [MB | --default]`: show or set how much full-photo storage a device may use."""
    from leaf_collector import fieldphotos
    from leaf_collector.db import connect, migrate

    if args.mb is not None and args.default:
        raise CollectorFailure("give a quota in MB or --default, not both")
    if args.mb is not None and args.mb < 0:
        raise CollectorFailure(f"a photo quota is a whole number of MB, 0 or more (got {args.mb})")
    dsn = _dsn(args)
    migrate(dsn)
    with connect(dsn) as conn:
        if args.mb is not None or args.default:
            if not fieldphotos.set_quota(conn, args.device_id, None if args.default else args.mb):
                print(f"no device {args.device_id!r} at this collector (leaf-collector token list)", file=sys.stderr)
                return 1
        elif not conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (args.device_id,)).fetchone():
            print(f"no device {args.device_id!r} at this collector (leaf-collector token list)", file=sys.stderr)
            return 1
        used = fieldphotos.usage(conn, args.device_id, args.collector_default_mb)
    whose = "its own" if used.quota_mb is not None else "the collector's default, serve --photo-quota-mb"
    print(
        f"{args.device_id}: photo quota {used.quota_bytes // fieldphotos.MIB} MB ({whose}); "
        f"{used.used_bytes / fieldphotos.MIB:.1f} MB used"
    )
    return 0


def add_device_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    device = sub.add_parser("device", help="per-device settings at base: the full-photo quota")
    device_sub = device.add_subparsers(dest="device_command", required=True, metavar="ACTION")
    quota = device_sub.add_parser("quota", help="show or set a device's full-photo quota at base")
    quota.add_argument("--dsn", help=f"PostgreSQL connection string or URI (default: ${DSN_ENV})")
    quota.add_argument("device_id")
    quota.add_argument("mb", type=int, nargs="?", help="the quota in MB (MiB); 0 takes no more photos")
    quota.add_argument("--default", action="store_true", help="back to the collector's serve --photo-quota-mb")
    quota.add_argument(
        "--collector-default-mb",
        type=int,
        default=_DEFAULT_QUOTA_MB,
        help=f"the collector's serve --photo-quota-mb, for the figure shown (default {_DEFAULT_QUOTA_MB})",
    )
    device.set_defaults(func=cmd_device)


# ---- the parser ---------------------------------------------------------------------------

# ---- the field pack for training (issue 13) -------------------------------------------------


def cmd_export_field_pack(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from leaf_collector import fieldpack

    target = Path(os.path.abspath(args.dir))
    summary = fieldpack.export(_dsn(args), args.photo_dir, target, replace=args.replace, now=datetime.now(UTC))
    for sha, problem in summary.missing:
        print(f"left out photo {sha}: {problem}", file=sys.stderr)
    print(summary.line(target))
    return 0


def cmd_adopt_photos(args: argparse.Namespace) -> int:
    from leaf_collector import fieldphotos, migrations
    from leaf_collector.db import connect
    from leaf_collector.photostore import DiskPhotoStore

    if not args.photo_dir.is_dir():  # a mistyped path would move the photos where serve never looks
        raise CollectorFailure(
            f"no folder {args.photo_dir}: give --photo-dir as serve has it (or make it first, owned by the "
            "collector's user); nothing was moved"
        )
    with connect(_dsn(args)) as conn:
        migrations.check_current(conn)
        done = fieldphotos.adopt_legacy(conn, DiskPhotoStore(args.photo_dir))
    for diagnosis_id in done.damaged:
        print(f"left in place: the full photo of diagnosis {diagnosis_id} differs from its checksum", file=sys.stderr)
    print(done.line())
    return 1 if done.damaged else 0


def add_field_pack_commands(sub, with_dsn) -> None:  # type: ignore[no-untyped-def]
    pack = with_dsn(
        sub.add_parser("export-field-pack", help="write the labelled field photos as a training pack (slug/ folders)")
    )
    pack.add_argument("dir", type=Path, metavar="DIR", help="a new or empty folder, or a previous pack with --replace")
    pack.add_argument(
        "--photo-dir",
        type=Path,
        default=Path("/var/lib/leaf-collector/photos"),
        help="the collector's photo store, as given to serve (default /var/lib/leaf-collector/photos)",
    )
    pack.add_argument("--replace", action="store_true", help="replace the field pack already in DIR")
    pack.set_defaults(func=cmd_export_field_pack)
    adopt = with_dsn(
        sub.add_parser(
            "adopt-photos",
            help="move the full photos a collector before schema 4 kept in the database into the photo store",
        )
    )
    adopt.add_argument("--photo-dir", type=Path, default=Path("/var/lib/leaf-collector/photos"), help="as serve has it")
    adopt.set_defaults(func=cmd_adopt_photos)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leaf-collector", description="Fleet collector for leaf appliances.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_dsn(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--dsn", help=f"PostgreSQL connection string or URI (default: ${DSN_ENV})")
        return p

    serve = with_dsn(sub.add_parser("serve", help="serve the device API and the agronomist's page"))
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads = database connections (default 8)")
    serve.add_argument(
        "--max-request-mb",
        type=float,
        default=protocol.DEFAULT_MAX_REQUEST_BYTES / 1024 / 1024,
        help="largest batch in MiB (default 16)",
    )
    serve.add_argument("--rate-per-minute", type=float, default=120.0, help="requests a minute per device (120)")
    serve.add_argument("--burst", type=int, default=30, help="requests a device may send at once (30)")
    serve.add_argument(
        "--photo-dir",
        type=Path,
        default=Path("/var/lib/leaf-collector/photos"),
        help="where full field photos are kept, by checksum (default /var/lib/leaf-collector/photos)",
    )
    serve.add_argument(
        "--trusted-proxy",
        metavar="ADDRESS",
        help="the address nginx connects from (e.g. 127.0.0.1): believe its X-Forwarded-For/-Proto "
        "(client address for sign-in limits, https for Secure cookies); default: believe no one",
    )
    serve.add_argument(
        "--photo-quota-mb",
        type=int,
        default=_DEFAULT_QUOTA_MB,
        help=f"full photos a device may keep at base, in MB, unless `device quota` gives it its own "
        f"({_DEFAULT_QUOTA_MB})",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = with_dsn(sub.add_parser("migrate", help="create or update the database schema"))
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="issue, revoke and list device tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    issue = with_dsn(token_sub.add_parser("issue", help="make a new token for a device (prints it once)"))
    issue.add_argument("device_id")
    revoke = with_dsn(token_sub.add_parser("revoke", help="stop a device's token working"))
    revoke.add_argument("device_id")
    with_dsn(token_sub.add_parser("list", help="devices, token state, last contact, records"))
    token.set_defaults(func=cmd_token)

    nginx = sub.add_parser("nginx-config", help="print the nginx site that fronts the collector (docs/collector.md)")
    nginx.add_argument("--listen", default="80", help="nginx listen address (default 80)")
    nginx.add_argument("--upstream", default="127.0.0.1:8080", help="the collector's --listen (default 127.0.0.1:8080)")
    nginx.add_argument(
        "--max-request-mb",
        type=float,
        default=protocol.DEFAULT_MAX_REQUEST_BYTES / 1024 / 1024,
        help="the collector's --max-request-mb (default 16)",
    )
    nginx.add_argument("--standalone", metavar="PREFIX", help="a whole nginx.conf keeping pid, logs, temp under PREFIX")
    nginx.set_defaults(func=cmd_nginx_config)

    add_account_commands(sub, with_dsn)
    add_device_commands(sub)
    add_field_pack_commands(sub, with_dsn)

    sub.add_parser("loadtest", help="benchmark: many simulated devices at once (leaf-collector loadtest --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["loadtest"]:  # its own parser (argparse's REMAINDER would swallow no leading option)
        from leaf_collector.loadtest import main as loadtest_main

        return loadtest_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except CollectorFailure as exc:
        print(f"leaf-collector: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
