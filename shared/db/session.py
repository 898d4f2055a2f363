"""Engines and sessions. Created once per process (API lifespan, worker boot), never at import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.db.outbox import EffectRunner, install_outbox


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        # The API and the worker are separate processes writing one file: WAL lets readers go on
        # while one writes, and the busy timeout makes a writer wait instead of failing.
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # The API runs up to 40 requests at once (its thread pool), each with a session: a pool of 5 and
    # 10 overflow connections closed on return opened a new Postgres connection for one submit in
    # three under load (bench/api_load.py counts them); 15 kept open stop that churn.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=15, max_overflow=10)


def create_session_factory(engine: Engine, effects: EffectRunner | None = None) -> sessionmaker[Session]:
    """Sessions whose outbox (`shared.db.outbox`) `effects` runs after each commit."""
    return install_outbox(sessionmaker(bind=engine, expire_on_commit=False), effects)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The unit of work: commit on success (then the outbox runs), roll back on error (it is dropped)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
