"""The embedded default's Celery broker: kombu's SQLAlchemy transport on a SQLite file.

Why not kombu's `filesystem://` (the embedded broker until now): it writes each message file in
place, so a worker polling the folder can open a file that is still being written and stop with
`Unrecoverable error: JSONDecodeError` (seen in a clean CI run). A broker must commit a message
whole or not at all; SQLite does that, works across processes on one machine with no server, and
kombu already ships a transport over SQLAlchemy (`sqla+…`). Its stock channel is not enough for
several processes on one SQLite file, so this module subclasses it:

- The file is in WAL mode (readers never block the writer, and the writer never blocks readers)
  with `synchronous=NORMAL` (a commit survives any process crash; only an OS crash may lose the
  last few, which the reaper recovers like any lost message) and a busy timeout, so that the API,
  beat, a worker and the CLI can send and take at once without "database is locked".
- A taken message is deleted in the same `BEGIN IMMEDIATE` transaction that takes it. The stock
  channel only marks it invisible and keeps the row forever; nothing ever makes it visible again,
  so the row was dead weight. Until it is acknowledged the message lives in the worker, as on
  every virtual kombu transport: a rejected or restored message (a pool process died with
  `task_reject_on_worker_lost`, a warm shutdown with `acks_late` tasks unacknowledged) is sent
  again as a new row marked redelivered. A worker's main process killed outright loses what it
  had taken, as it did with the filesystem transport: the reaper re-sends such a stage.
- An idle poll only reads (WAL readers take no lock); the write lock is taken only when a
  message is there to take. That lets the worker poll every `POLL_INTERVAL_S` without slowing
  the producers, which keeps submit-to-start short.
- Engines are made per process (a forked pool process must not reuse its parent's SQLite
  connections) and the tables are created under a retry, since several processes may open a
  fresh file at the same moment.

The other fix is an atomic write-and-rename filesystem transport (write a temporary name, then
`os.replace`). `bench/embedded_broker.py` measured both on this 2-CPU machine with a real prefork
worker (figures in the README): submit-to-start p50 20-22 ms and p95 28-31 ms for kombu's, the
atomic and this transport alike once all poll every 20 ms; 2,000 messages sent at once were all
started after 5.7 s (kombu's filesystem), 9.7 s (atomic rename) and 12.0 s (this one). SQLite was
chosen all the same: a job platform's tasks are stages of seconds to hours, so 167 messages/s is
far above need, while the filesystem transport has more than one such hazard (its take moves the
file into the system temp folder, a non-atomic copy when that is another filesystem; each poll
lists the whole folder; its exchange tables are files rewritten in place) and SQLite's atomicity
is the database's, not ours.

Broadcasts (Celery's remote control: the reaper's revoke of a stuck task, shutdown, inspect) go
through a fanout exchange, which kombu's SQLAlchemy transport lacks: the bindings of control queues
are kept in the file (`FANOUT_BINDINGS`), and a broadcast is one row per bound queue. A worker killed
outright leaves its binding, so its control queue collects the (rare) broadcasts until a worker of
the same name starts again and reads them; Celery ignores a revoke for a task it does not hold.

Messages a `var/` from before this change left in its broker folder are moved into this transport
once, when a worker starts (`import_filesystem_messages`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from json import loads
from pathlib import Path
from queue import Empty
from typing import Any

import sqlalchemy as sa
import structlog
from celery import Celery
from kombu import Connection
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import create_engine, event, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import Settings

log = structlog.get_logger(__name__)

TRANSPORT_NAME = "temper-sqlite"
# How long a process waits for another one's write lock before the operation fails. Writes are
# single-row transactions that take well under a millisecond; a wait this long means something
# is wrong, not busy.
BUSY_TIMEOUT_S = 30.0
# How often an idle worker looks for a message: the mean extra submit-to-start delay is half of it.
# An idle poll is a few indexed reads of a small file (no lock), well under a millisecond.
POLL_INTERVAL_S = 0.02

_engines_lock = threading.Lock()
_engines: dict[tuple[int, str], tuple[Engine, sessionmaker[Session]]] = {}


def embedded_broker_url(path: Path) -> str:
    return f"{TRANSPORT_NAME}+sqlite:///{path}"


def transport_options() -> dict[str, object]:
    return {"polling_interval": POLL_INTERVAL_S}


def _configure_connection(dbapi_connection: Any, _record: object) -> None:
    # pysqlite would open transactions on its own before DML; in autocommit mode each statement
    # commits by itself and the channel says BEGIN IMMEDIATE where it needs a transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


# Bindings of queues to fanout exchanges, shared by every process on the file: a broadcast (Celery's
# remote control: a revoke, a shutdown) goes to every worker's control queue, and the sender only
# knows them from here. kombu's own SQLAlchemy channel keeps bindings in process memory and has no
# fanout at all, so a `revoke(terminate=True)` sent by the reaper reached no worker.
FANOUT_BINDINGS = sa.Table(
    "temper_fanout_bindings",
    kombu_sqlalchemy.metadata,
    sa.Column("exchange", sa.String(200), primary_key=True),
    sa.Column("routing_key", sa.String(200), primary_key=True),
    sa.Column("pattern", sa.String(200), primary_key=True),
    sa.Column("queue", sa.String(200), primary_key=True),
)


class Channel(kombu_sqlalchemy.Channel):
    """kombu's SQLAlchemy channel made fit for several processes on one SQLite file."""

    # Fanout exchanges' bindings live in FANOUT_BINDINGS (`_queue_bind`, `get_table`, `_put_fanout`).
    supports_fanout = True

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        self._queue_ids: dict[str, int] = {}
        super().__init__(connection, **kwargs)

    def _open(self) -> tuple[Engine, sessionmaker[Session]]:
        url = self.connection.client.hostname
        key = (os.getpid(), url)
        with _engines_lock:
            if key not in _engines:
                engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
                event.listen(engine, "connect", _configure_connection)
                _create_tables(engine)
                _engines[key] = engine, sessionmaker(bind=engine)
            return _engines[key]

    def _queue_id(self, queue: str) -> int:
        if queue not in self._queue_ids:
            queues = self.queue_cls.__table__
            engine, _ = self._open()
            with engine.connect() as connection:
                # kombu's own get-or-create is a read then an INSERT: two processes declaring a
                # queue at once both insert, and the loser stops on the unique name.
                connection.execute(
                    sqlite_insert(queues).values(name=queue).on_conflict_do_nothing(index_elements=["name"])
                )
                found = connection.execute(select(queues.c.id).where(queues.c.name == queue)).scalar_one()
            self._queue_ids[queue] = int(found)
        return self._queue_ids[queue]

    def _get_or_create(self, queue: str) -> Any:
        queue_id = self._queue_id(queue)
        return self.session.get(self.queue_cls, queue_id)

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        self._queue_id(queue)

    # kombu's virtual channel names the second argument `message`, its SQLAlchemy channel `payload`.
    def _put(self, queue: str, message: dict[str, Any], **options: Any) -> None:  # type: ignore[override]
        messages = self.message_cls.__table__
        engine, _ = self._open()
        with engine.connect() as connection:
            # One INSERT, committed by itself (autocommit): a message is stored whole or not at all.
            connection.execute(
                messages.insert().values(
                    queue_id=self._queue_id(queue), payload=json.dumps(message), visible=True, version=1
                )
            )

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        messages = self.message_cls.__table__
        waiting = messages.c.queue_id == self._queue_id(queue)
        engine, _ = self._open()
        with engine.connect() as connection:
            # A plain read first: an idle poll must not take the write lock that producers need.
            if connection.execute(select(messages.c.id).where(waiting).limit(1)).first() is None:
                raise Empty()
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    select(messages.c.id, messages.c.payload).where(waiting).order_by(messages.c.id).limit(1)
                ).first()
                if row is not None:
                    connection.execute(messages.delete().where(messages.c.id == row.id))
                connection.exec_driver_sql("COMMIT")
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
        if row is None:  # another worker took it between the read and the lock
            raise Empty()
        result: dict[str, Any] = loads(bytes_to_str(row.payload))
        return result

    def _is_fanout(self, exchange: str) -> bool:
        declared = self.state.exchanges.get(exchange)
        return bool(declared) and declared.get("type") == "fanout"

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        if not self._is_fanout(exchange):
            return  # direct exchanges route by the bindings each sender declares itself
        engine, _ = self._open()
        with engine.connect() as connection:
            connection.execute(
                sqlite_insert(FANOUT_BINDINGS)
                .values(exchange=exchange, routing_key=routing_key or "", pattern=pattern or "", queue=queue)
                .on_conflict_do_nothing()
            )

    def get_table(self, exchange: str) -> Any:
        if not self._is_fanout(exchange):
            return super().get_table(exchange)
        engine, _ = self._open()
        table = FANOUT_BINDINGS
        with engine.connect() as connection:
            rows = connection.execute(
                select(table.c.routing_key, table.c.pattern, table.c.queue).where(
                    table.c.exchange == exchange
                )
            ).all()
        return [(row.routing_key, row.pattern, row.queue) for row in rows]

    def _put_fanout(self, exchange: str, message: dict[str, Any], routing_key: str, **kwargs: Any) -> None:
        for _, _, queue in self.get_table(exchange):
            self._put(queue, message)

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False, **kwargs: Any
    ) -> None:
        """A queue deleted (a worker's control queue at its shutdown) leaves no binding behind,
        whichever process bound it."""
        if if_empty and self._size(queue):
            return
        super().queue_delete(queue, if_unused=if_unused, if_empty=if_empty, **kwargs)
        engine, _ = self._open()
        with engine.connect() as connection:
            connection.execute(FANOUT_BINDINGS.delete().where(FANOUT_BINDINGS.c.queue == queue))


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    # Celery starts a worker's remote control (revoke, shutdown, inspect) only over a transport
    # that says it broadcasts.
    implements = kombu_sqlalchemy.Transport.implements.extend(
        exchange_type=frozenset(["direct", "topic", "fanout"])
    )
    # Polls are cheap reads; see POLL_INTERVAL_S.
    polling_interval = POLL_INTERVAL_S


def _create_tables(engine: Engine) -> None:
    """kombu's tables, created once; processes opening a fresh file together may race on it."""
    for _ in range(5):
        try:
            kombu_sqlalchemy.metadata.create_all(engine)
            return
        except OperationalError as error:
            if "already exists" not in str(error) and "locked" not in str(error):
                raise
    kombu_sqlalchemy.metadata.create_all(engine)


def register() -> None:
    """Make `temper-sqlite+sqlite:///…` URLs name this transport (in this process)."""
    TRANSPORT_ALIASES.setdefault(TRANSPORT_NAME, f"{__name__}:Transport")


def adopt_filesystem_broker(settings: Settings, app: Celery) -> int:
    """On the embedded default, move what the old filesystem broker folder holds into this one."""
    if not settings.is_embedded:
        return 0
    with app.connection_for_write() as connection:
        return import_filesystem_messages(settings.broker_directory / "queue", connection)


def import_filesystem_messages(folder: Path, connection: Connection) -> int:
    """Move the messages kombu's filesystem transport left in `folder` into `connection`'s broker.

    Each file is claimed by renaming it first, so two workers starting together never move one
    message twice. A file that is not a whole message (the half-written files this transport
    replaced) is kept aside under `unreadable/` and logged, never sent.
    """
    if not folder.is_dir():
        return 0
    channel = connection.default_channel
    moved = 0
    for path in sorted(folder.glob("*.msg")):
        claimed = path.with_name(path.name + f".moving-{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another process claimed it
        # kombu names each file `<time>_<uuid>.<queue>.msg`.
        queue = path.name[: -len(".msg")].split(".", 1)[1]
        try:
            payload = json.loads(claimed.read_bytes())
        except ValueError:
            unreadable = folder.parent / "unreadable"
            unreadable.mkdir(exist_ok=True)
            claimed.rename(unreadable / path.name)
            log.warning("broker message unreadable, kept aside", path=str(unreadable / path.name))
            continue
        put: Callable[[str, dict[str, Any]], None] = channel._put
        put(queue, payload)
        claimed.unlink()
        moved += 1
    if moved:
        log.warning(
            "moved messages from the old filesystem broker into the embedded SQLite broker",
            messages=moved,
            folder=str(folder),
        )
    return moved
