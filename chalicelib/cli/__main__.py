"""`python -m chalicelib.cli push SRC DEST`: see `chalicelib/cli/__init__.py` and the README."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from chalicelib.cli import credentials
from chalicelib.cli.progress import Bars, Silent
from chalicelib.cli.push import MIB, PushError, PushOptions, push
from chalicelib.cli.references import ReferenceError, RemoteReference, parse, parse_remote
from chalicelib.cli.registry import RegistryClient, RegistryResponseError
from chalicelib.cli.sources import SourceError, open_source

_EPILOG = """\
sources: oci:PATH[:TAG]  docker-archive:PATH[:NAME:TAG]  docker://HOST/REPO[:TAG|@DIGEST]
example: python -m chalicelib.cli push --plain-http docker-archive:app.tar 127.0.0.1:5000/team/app:v1
credentials: --dest-creds/--src-creds, else the Docker config file (auths, credHelpers, credsStore)
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description="Registry client tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser(
        "push",
        help="copy an image into a registry in capped chunks",
        description="Copy an image (OCI layout, docker save archive, or another registry) into a registry, "
        "in PATCH chunks no larger than the registry's OCI-Chunk-Max-Length.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("source", metavar="SRC")
    cmd.add_argument("dest", metavar="DEST", help="HOST[:PORT]/REPOSITORY[:TAG] (docker:// optional)")
    cmd.add_argument("--chunk-size", type=_size, default=16 * MIB, help="largest chunk (default 16MiB; "
                     "the registry's OCI-Chunk-Max-Length lowers it)")  # fmt: skip
    cmd.add_argument("--jobs", "-j", type=int, default=4, help="blobs uploaded at once (default 4)")
    cmd.add_argument("--retries", type=int, default=5, help="retries of a failed chunk before giving up")
    cmd.add_argument("--mount-from", action="append", default=[], metavar="REPO",
                     help="a repository of DEST's registry to mount blobs from (repeatable)")  # fmt: skip
    cmd.add_argument("--dest-creds", metavar="USER:PASSWORD")
    cmd.add_argument("--src-creds", metavar="USER:PASSWORD")
    cmd.add_argument("--authfile", type=Path, help="Docker config file (default $DOCKER_CONFIG/config.json, "
                     "else ~/.docker/config.json)")  # fmt: skip
    cmd.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS, to DEST")
    cmd.add_argument("--src-plain-http", action="store_true", help="talk HTTP, not HTTPS, to a registry SRC")
    cmd.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    cmd.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        return _push(args)
    except (ReferenceError, SourceError, credentials.CredentialError, PushError, RegistryResponseError) as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1


def _push(args: argparse.Namespace) -> int:
    authfile = args.authfile or _default_authfile()
    dest = parse_remote(args.dest.removeprefix("docker://"))
    source_ref = parse(args.source)
    dest_scopes = [f"repository:{dest.repository}:pull,push"]
    source_client = None
    if isinstance(source_ref, RemoteReference):
        source_client = _client(source_ref.host, args.src_creds, authfile, [f"repository:{source_ref.repository}:pull"],
                                plain_http=args.src_plain_http, args=args)  # fmt: skip
    client = _client(dest.host, args.dest_creds, authfile, dest_scopes, plain_http=args.plain_http, args=args)
    source = open_source(source_ref, source_client)
    options = PushOptions(
        chunk_size=args.chunk_size, jobs=args.jobs, retries=args.retries, mount_from=tuple(args.mount_from)
    )
    if args.quiet:
        result = push(source, client, dest.repository, dest.reference, options=options, progress=Silent())
    else:
        with Bars() as bars:
            result = push(source, client, dest.repository, dest.reference, options=options, progress=bars)
    counts = {o: sum(1 for v in result.outcomes.values() if v == o) for o in ("uploaded", "mounted", "exists")}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    print(f"pushed {dest} ({result.digest}): {summary or 'no blobs'}; {result.chunks} chunks, {result.resumes} resumes")
    return 0


def _client(
    host: str, creds: str | None, authfile: Path, scopes: list[str], *, plain_http: bool, args: argparse.Namespace
) -> RegistryClient:
    found = credentials.parse_creds(creds) if creds else credentials.lookup(host, authfile)
    return RegistryClient(
        host, found, scopes, plain_http=plain_http, verify_tls=not args.insecure, connections=args.jobs + 2
    )


def _default_authfile() -> Path:
    """Where docker itself looks: a client's file, not a registry setting (chalicelib/config.py)."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def _size(text: str) -> int:
    units = {"kib": 1024, "mib": MIB, "gib": 1024 * MIB, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "b": 1}
    lowered = text.strip().lower()
    for suffix, factor in units.items():
        if lowered.endswith(suffix) and lowered[: -len(suffix)].strip().isdigit():
            return int(lowered[: -len(suffix)]) * factor
    if lowered.isdigit() and int(lowered) > 0:
        return int(lowered)
    raise argparse.ArgumentTypeError(f"{text!r}: a size such as 4194304, 4MiB or 512KiB")


if __name__ == "__main__":
    sys.exit(main())
