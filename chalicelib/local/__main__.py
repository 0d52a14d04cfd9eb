"""`python -m chalicelib.local`: the embedded registry that `make serve` runs.

One process: moto in-process for DynamoDB, blob bytes as files under `REGISTRY_DATA_DIR/objects`
(`stores/files.py`), the Chalice app behind waitress through the WSGI adapter (which also serves the
blob download URLs), and the upload relay (`chalicelib/relay`) on its own port beside it. Every
DynamoDB write is journaled under `REGISTRY_DATA_DIR/dynamodb` before it is acknowledged, and the
journal is compacted into a snapshot when it grows and on SIGTERM/SIGINT (`persistence.py`). The data
directory is private to its owner (0700).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import waitress
from pydantic import SecretStr
from waitress import wasyncore
from waitress.channel import HTTPChannel

if TYPE_CHECKING:
    from chalicelib.config import Settings
    from chalicelib.local.persistence import Persistence
    from chalicelib.stores.files import FileObjectStore


def _refuse_tls_probes() -> None:
    """Close a connection whose first bytes are a TLS ClientHello.

    docker and skopeo try https first even for an insecure registry; waitress would wait for a
    request line until a 10 s handshake timeout. Closing at once makes them fall back to http.
    """
    original = HTTPChannel.received

    def received(self: Any, data: bytes) -> bool:
        if not getattr(self, "_registry_plain", False):
            if data[:2] == b"\x16\x03":
                self.will_close = True
                return False
            self._registry_plain = True
        return bool(original(self, data))

    HTTPChannel.received = received


def _configure_libraries() -> None:
    # Local-only defaults for boto3 and Powertools (they read their own variables).
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # moto's embedded server would log every S3 and DynamoDB call the registry makes.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


_stop_reason: list[str] = []  # the signal that asked the runner to stop (the first one only)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Note the request; the main loop polls for it. Lock-free on purpose: the handler runs on the
    main thread wherever it was interrupted, possibly holding a lock (setting a `threading.Event`
    here deadlocks when the interrupted code is that Event's own `wait`). waitress runs in another
    thread, so nothing its loop does can swallow the request. Only the first signal counts (`make`
    forwards the group's SIGTERM a second time); the handler stays installed, because replacing it
    from inside itself raises when that second signal is already pending."""
    if not _stop_reason:
        _stop_reason.append(signal.Signals(signum).name)


def _prepare_identity(data_dir: Path) -> str | None:
    """Local stand-ins for what AWS keeps in Secrets Manager: the token signing key (a file under
    the data dir) and, on first start, a generated admin password (returned to be printed once)."""
    from chalicelib.auth.secrets import generate_robot_secret  # noqa: PLC0415
    from chalicelib.auth.tokens import SigningKey  # noqa: PLC0415
    from chalicelib.config import get_settings  # noqa: PLC0415
    from chalicelib.local.journal import write_private  # noqa: PLC0415
    from chalicelib.stores import tables  # noqa: PLC0415
    from chalicelib.stores.users import UserStore  # noqa: PLC0415

    key_file = data_dir / "token-signing-key.pem"
    if not key_file.exists():
        write_private(key_file, iter([SigningKey.generate().to_pem()]))
    key_file.chmod(0o600)
    os.environ.setdefault("REGISTRY_TOKEN_KEY_FILE", str(key_file))
    settings = get_settings()
    if settings.admin_password is not None:
        return None
    tables.bind(settings.table_name, settings.aws_region, settings.aws_endpoint_url)
    if UserStore().get("admin") is not None:
        return None
    password = generate_robot_secret(32)
    os.environ["REGISTRY_ADMIN_PASSWORD"] = password
    return password


def _no_relay() -> None:
    """The stop of a relay that was not started (`REGISTRY_LOCAL_RELAY=false`)."""


def _start_relay(data_dir: Path) -> Callable[[], None]:
    """The upload relay beside the app (`chalicelib/relay`), bound now so that its URL is known:
    upload Locations point at it, so every local push crosses hosts as it does on AWS. The shared
    key is REGISTRY_RELAY_KEY or a file under the data dir (created once, mode 0600)."""
    from chalicelib import wiring  # noqa: PLC0415
    from chalicelib.config import get_settings  # noqa: PLC0415
    from chalicelib.relay import server  # noqa: PLC0415
    from chalicelib.relay.app import RelayApp  # noqa: PLC0415

    wiring.reset()
    settings = get_settings()
    if settings.relay_key is None:
        key_file = data_dir / "relay-key"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(secrets.token_urlsafe(48))
        os.environ["REGISTRY_RELAY_KEY"] = key_file.read_text().strip()
    httpd = server.build(_durable_answers(RelayApp(wiring.services)), settings.host, settings.relay_listen_port)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104 (a comparison)
    os.environ.setdefault("REGISTRY_RELAY_URL", f"http://{host}:{httpd.server_port}")
    wiring.reset()
    threading.Thread(target=httpd.serve_forever, name="relay", daemon=True).start()
    print(f"relay listening on http://{settings.host}:{httpd.server_port} (upload Locations: "
          f"{os.environ['REGISTRY_RELAY_URL']})", flush=True)  # fmt: skip
    return httpd.shutdown


def _key_file(path: Path, make: Callable[[], str]) -> str:
    """A local stand-in for a Secrets Manager secret: a 0600 file under the data dir, made once."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make())
    path.chmod(0o600)
    return path.read_text().strip()


def _begin_scanner(data_dir: Path, settings: Settings) -> _Scanner | None:
    """What the app needs before its wiring is built: credentials it keeps go to the table,
    encrypted (the key a file under the data dir), and scanner calls may reach the built-in
    adapter's loopback address; then the adapter's start, unless `REGISTRY_LOCAL_SCANNER=false`."""
    import base64  # noqa: PLC0415

    from chalicelib import wiring  # noqa: PLC0415

    key_file = data_dir / "secret-key"
    _key_file(key_file, lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    os.environ.setdefault("REGISTRY_LOCAL_SECRET_KEY_FILE", str(key_file))
    if settings.local_scanner:
        networks = [n for n in settings.scanner_allow_networks.split(",") if n.strip()]
        if _LOOPBACK not in networks:
            os.environ["REGISTRY_SCANNER_ALLOW_NETWORKS"] = ",".join([*networks, _LOOPBACK])
    wiring.reset()
    return _Scanner(data_dir, settings) if settings.local_scanner else None


_LOOPBACK = "127.0.0.1/32"
_BUILTIN_SCANNER = "osv-lite"


class _Scanner:
    """The built-in scanner adapter (`chalicelib/scanner_adapter`) on a loopback port, in this
    process: started on a thread while the rest starts (loading the OSV database is the slow part),
    registered once the app is built."""

    def __init__(self, data_dir: Path, settings: Settings) -> None:
        self._data_dir = data_dir
        self._settings = settings
        self._running: Any = None
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._start, name="scanner-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        from pydantic import ValidationError  # noqa: PLC0415

        from chalicelib.scanner_adapter.server import start  # noqa: PLC0415
        from chalicelib.scanner_adapter.settings import AdapterSettings  # noqa: PLC0415

        try:
            base = AdapterSettings()
            database = base.osv_database
            if database is None:
                database = self._data_dir / "osv"
                database.mkdir(mode=0o700, exist_ok=True)
            key = _key_file(self._data_dir / "scanner-api-key", lambda: secrets.token_urlsafe(32))
            networks = [n for n in base.egress_allow_networks.split(",") if n.strip()]
            adapter = base.model_copy(update={
                "osv_database": database, "scanner_host": "127.0.0.1", "scanner_api_key": SecretStr(key),
                "egress_allow_networks": ",".join([*networks, _LOOPBACK]),
            })  # fmt: skip
            port = self._settings.local_scanner_port
            try:
                running = start(adapter.model_copy(update={"scanner_port": self._settings.port + 2 if port is None
                                                           else port}))  # fmt: skip
            except OSError:
                if port is not None:
                    raise
                running = start(adapter.model_copy(update={"scanner_port": 0}))  # port + 2 is taken
            self._running = (running, key, database, base.osv_database is None)
        except (ValidationError, ValueError, OSError) as failure:
            self._failure = str(failure)

    def register(self) -> Callable[[], None]:
        """Wait for the start, register the adapter as `osv-lite` (idempotent: the default unless
        another registration is); the adapter's stop."""
        from chalicelib import wiring  # noqa: PLC0415

        self._thread.join()
        if self._running is None:
            print(f"scanner adapter not started: {self._failure}", file=sys.stderr, flush=True)
            return _no_relay
        running, key, database, empty = self._running
        registration = wiring.services().scanners.ensure_builtin(_BUILTIN_SCANNER, running.url, key)
        default = " (default scanner)" if registration.is_default else ""
        hint = " (empty: set REGISTRY_OSV_DATABASE or put OSV files there)" if empty else ""
        print(f"scanner adapter {_BUILTIN_SCANNER} on {running.url}{default}, OSV database {database}{hint}",
              flush=True)  # fmt: skip
        return running.close  # type: ignore[no-any-return]


def _warm_clients() -> None:
    """Build every table model's botocore client now (PynamoDB builds one per model class, lazily,
    ~40 ms each), the tracer (the X-Ray SDK's import and its client) and the token signing key:
    otherwise the first push after a start pays for them."""
    from chalicelib import observability, wiring  # noqa: PLC0415
    from chalicelib.stores import tables  # noqa: PLC0415

    for model in tables.MODELS:
        model._get_connection().connection.client  # noqa: B018 (the property builds the client)
    observability.prepare_tracer()
    wiring.services().access.prepare()


def _settle_heap(*, collect: bool) -> None:
    """Take what start-up built (modules, botocore's and moto's models, the app, the state
    machines) out of the garbage collector's view. A full collection walked all of it, 100-150 ms
    of whichever request triggered it: the first push after a start paid that once or twice
    (measured with `gc.callbacks`). Later collections walk only what came after. `collect` first
    frees start-up's garbage instead of keeping it, which costs one such walk while nothing is
    served yet."""
    if collect:
        gc.collect()
    gc.freeze()


def _gate_bodies(settings: Settings) -> None:
    """Judge each body from its headers before waitress reads it (local/bodygate.py)."""
    from chalicelib import wiring  # noqa: PLC0415
    from chalicelib.local import bodygate  # noqa: PLC0415

    def credentials_ok(header: str) -> bool:
        wiring.services().access.authenticate(header)  # raises Unauthorized
        return True

    bodygate.install(max(settings.request_body_max_bytes, settings.manifest_max_bytes + 1024), credentials_ok)


def _durable_answers(application: Any) -> Any:
    """A request's DynamoDB writes are on disk before its answer leaves: they wait for the journal
    together, at the end (`persistence.durable_on_exit`); waitress sends nothing before this returns."""
    from chalicelib.local.persistence import durable_on_exit  # noqa: PLC0415

    def answer(environ: dict[str, Any], start_response: Any) -> Any:
        with durable_on_exit():
            return application(environ, start_response)

    return answer


def _build_server(settings: Settings, files: FileObjectStore) -> Any:
    """The app behind the WSGI adapter under waitress, with its clients built before the first request."""
    from app import app  # noqa: PLC0415
    from chalicelib import wiring  # noqa: PLC0415
    from chalicelib.local import sendfile  # noqa: PLC0415
    from chalicelib.local.wsgi import ChaliceWSGI  # noqa: PLC0415

    wiring.services()
    _warm_clients()
    _refuse_tls_probes()
    _gate_bodies(settings)
    sendfile.install()
    return waitress.create_server(
        _durable_answers(ChaliceWSGI(app, files=files, inline_downloads=not settings.local_blob_redirect)),
        host=settings.host,
        port=settings.port,
        threads=settings.server_threads,
        max_request_body_size=64 * 1024**3,
        # Bodies are handed to the app in memory anyway; spooling them to disk first only costs I/O.
        inbuf_overflow=512 * 1024**2,
        recv_bytes=1024 * 1024,  # fewer, larger reads of multi-megabyte layer bodies
        channel_timeout=300,
        clear_untrusted_proxy_headers=True,
        ident="registry",
    )


def _shut_down(server: Any, serving: threading.Thread) -> None:
    """Stop accepting, let requests in flight finish and flush, then close every channel so that
    waitress's loop (in `serving`) ends. Sockets are closed by the loop thread itself (through
    waitress's trigger), never under its select()."""
    # Best effort at each step (the loop may already be gone): the state is saved after this whatever
    # happens here, and `serving` is a daemon thread that cannot keep the process alive.
    with contextlib.suppress(OSError):
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=10)
    if serving.is_alive():
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    serving.join(timeout=10)


def _shut_down_and_save(server: Any, serving: threading.Thread, persistence: Persistence, emulator: Any) -> None:
    try:
        _shut_down(server, serving)
    finally:
        persistence.close()  # every write is journaled already; this compacts for a quick start
        emulator.stop()
        print("state saved", flush=True)
        # The interpreter's exit would now trace the emulator's whole heap (seconds of a stopping
        # server) in a last collection that frees nothing worth having: the process is ending.
        gc.freeze()


def _start_housekeeping(persistence: Persistence, files: FileObjectStore, interval: int) -> threading.Thread:
    """A thread that compacts the journal when it has grown enough and, hourly, expires abandoned
    uploads' staging (what the bucket's lifecycle rules do on AWS); `_housekeeping_stop` stops it."""

    def loop() -> None:
        last_expiry = time.monotonic()
        while not _housekeeping_stop.wait(interval):
            persistence.compact_if_due()
            if time.monotonic() - last_expiry > 3600:
                files.expire_staging()
                last_expiry = time.monotonic()

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread


_housekeeping_stop = threading.Event()


def _start_job_engine(emulator: Any, settings: Settings) -> threading.Thread:
    """moto executes the state machines of `infra/statemachines/`, its Lambda Tasks dispatched to the
    registry's handlers (chalicelib/local/stepfunctions.py). Created on a thread (loading moto's
    interpreter takes seconds) while the server starts and serves; a job started before the
    machines exist waits for them."""
    from chalicelib.local import stepfunctions  # noqa: PLC0415

    stepfunctions.install()
    stepfunctions.hold_starts_until_created()
    arns = stepfunctions.machine_arns(settings.aws_region)
    os.environ.setdefault("REGISTRY_GC_STATE_MACHINE_ARN", arns["GARBAGE_COLLECTION"])
    os.environ.setdefault("REGISTRY_RETENTION_STATE_MACHINE_ARN", arns["RETENTION"])
    os.environ.setdefault("REGISTRY_SCAN_STATE_MACHINE_ARN", arns["IMAGE_SCAN"])
    os.environ.setdefault("REGISTRY_SCAN_ALL_STATE_MACHINE_ARN", arns["SCAN_ALL"])
    os.environ.setdefault("REGISTRY_SCAN_EXPORT_STATE_MACHINE_ARN", arns["SCAN_DATA_EXPORT"])
    os.environ.setdefault("REGISTRY_REPLICATION_STATE_MACHINE_ARN", arns["REPLICATION"])
    # Webhooks use it unless REGISTRY_WEBHOOK_DELIVERY=threads.
    os.environ.setdefault("REGISTRY_WEBHOOK_STATE_MACHINE_ARN", arns["WEBHOOK"])
    client = emulator.client("stepfunctions")
    engine = threading.Thread(
        target=stepfunctions.create_state_machines, args=(client, settings.aws_region), name="job-engine", daemon=True
    )
    engine.start()
    return engine


def _start_scheduler(settings: Settings) -> Any:
    """The scheduler thread; it first marks jobs the last shutdown interrupted (chalicelib/local/scheduler.py)."""
    from chalicelib import wiring  # noqa: PLC0415
    from chalicelib.local.scheduler import Scheduler  # noqa: PLC0415

    scheduler = Scheduler(
        lambda: wiring.services().jobs,
        settings.scheduler_interval_seconds,
        lambda now: wiring.services().retention_runs.run_due(now),  # noqa: PLW0108 (services are rebuilt lazily)
        lambda: wiring.services().registries.refresh_health(),  # noqa: PLW0108 (services are rebuilt lazily)
        settings.remote_registry_health_seconds,
        replication=lambda now: wiring.services().replication.run_due(now),  # noqa: PLW0108
    )
    scheduler.start()
    return scheduler


def _resume_webhooks() -> None:
    """Webhook deliveries the last shutdown interrupted start again (their moto executions died
    with that process; the rows kept each delivery's input and attempt count)."""
    from chalicelib import wiring  # noqa: PLC0415
    from chalicelib.stores.projects import ProjectStore  # noqa: PLC0415

    resumed = wiring.services().webhook_delivery.resume(ProjectStore().names())
    if resumed:
        print(f"resumed {resumed} interrupted webhook deliveries", flush=True)


def _open_object_store(data_dir: Path, sync: bool) -> FileObjectStore:
    """The blob files, without what a crash or abandoned uploads left behind."""
    from chalicelib.stores.files import FileObjectStore  # noqa: PLC0415

    files = FileObjectStore(data_dir / "objects", sync=sync)
    files.clear_scratch()
    files.expire_staging()
    return files


def _restore(settings: Settings, data_dir: Path, emulator: Any) -> tuple[Persistence, FileObjectStore, int, int]:
    """The tables as the last acknowledged write left them, journaling from here on; the blob files.
    Returns both, with how many rows and objects they hold."""
    from chalicelib.local.persistence import Persistence  # noqa: PLC0415

    files = _open_object_store(data_dir, sync=not settings.unsafe_no_journal)
    persistence = Persistence(
        data_dir, settings.aws_region, journal=not settings.unsafe_no_journal,
        compact_bytes=settings.journal_compact_bytes,
    )  # fmt: skip
    items = persistence.restore()
    emulator.create_resources()  # a first start: the table's creation is journaled too
    return persistence, files, items, _count_objects(files)


def _count_objects(files: FileObjectStore) -> int:
    root, count = files.root, 0
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # the store's own temporary files
        count += len(names) if top != str(root) else 0
    return count


def _start_emulator(settings: Settings) -> Any:
    """moto in this process; the DynamoDB clients' calls handed to its handler directly (`local/direct.py`)."""
    from chalicelib.local import direct  # noqa: PLC0415
    from chalicelib.local.emulator import Emulator  # noqa: PLC0415

    emulator = Emulator(settings)
    emulator.start()
    if settings.aws_endpoint_url is None:
        direct.install()
    return emulator


def main() -> int:  # noqa: PLR0915 (the runner's start and stop steps, in order, in one place)
    _configure_libraries()
    from chalicelib import wiring  # noqa: PLC0415  (after the environment is set)
    from chalicelib.config import get_settings  # noqa: PLC0415
    from chalicelib.local import moto_patches  # noqa: PLC0415
    from chalicelib.local.journal import private_dir  # noqa: PLC0415

    settings = get_settings()
    data_dir = private_dir(settings.data_dir.resolve())
    lock = (data_dir / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another registry is already using {data_dir}", file=sys.stderr)
        return 1

    try:
        moto_patches.apply()
    except moto_patches.UncheckedMotoVersion as exc:
        print(str(exc), file=sys.stderr)
        return 1
    emulator = _start_emulator(settings)
    os.environ["REGISTRY_LOCAL_OBJECT_DIR"] = str(data_dir / "objects")
    wiring.reset()
    settings = get_settings()
    engine = _start_job_engine(emulator, settings)
    persistence, files, items, objects = _restore(settings, data_dir, emulator)
    generated_password = _prepare_identity(data_dir)
    scanner = _begin_scanner(data_dir, settings)
    stop_relay = _start_relay(data_dir) if settings.local_relay else _no_relay
    settings = get_settings()

    server = _build_server(settings, files)
    _settle_heap(collect=True)
    stop_scanner = scanner.register() if scanner is not None else _no_relay
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(
        f"registry listening on http://{settings.host}:{server.effective_port}  "
        f"(data: {data_dir}, restored {items} rows and {objects} objects)",
        flush=True,
    )
    if generated_password:
        print(f"created user admin with password {generated_password} (shown once; set REGISTRY_ADMIN_PASSWORD "
              "to choose it)", flush=True)  # fmt: skip
    serving = threading.Thread(target=server.run, name="waitress", daemon=True)
    serving.start()
    engine.join()  # what starts jobs comes after the machines exist
    _settle_heap(collect=False)  # the state machines too; a full collection now would stall requests
    scheduler = _start_scheduler(settings)
    _resume_webhooks()
    housekeeping = _start_housekeeping(persistence, files, settings.snapshot_interval_seconds)
    try:
        while not _stop_reason and serving.is_alive():
            time.sleep(0.2)
        print(f"stopping on {_stop_reason[0] if _stop_reason else 'server exit'}", flush=True)
    finally:
        _housekeeping_stop.set()
        scheduler.stop()
        housekeeping.join(timeout=60)  # a compaction in progress
        stop_relay()
        stop_scanner()
        _shut_down_and_save(server, serving, persistence, emulator)
    return 0


if __name__ == "__main__":
    sys.exit(main())
