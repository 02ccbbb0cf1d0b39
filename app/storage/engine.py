"""One SQLAlchemy engine per process, always on the psycopg2 driver."""

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url


def database_engine(url: str, pool_size: int = 4) -> Engine:
    """Build an engine; call it after fork, so no pooled socket is shared by two processes.

    Plain `postgresql://` URLs are pinned to psycopg2, which SQLAlchemy 2.1 no
    longer picks by default. Multi-row updates go out as one batch.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        executemany_mode="values_plus_batch",
    )
