"""A symbol's row held by another session, as a concurrent order would hold it."""

import contextlib
import threading

from sqlalchemy import text


@contextlib.contextmanager
def symbol_locked(engine, symbol: str, at_most_s: float):
    """`symbol`'s row locked by another session until the block ends, or `at_most_s` passes."""
    locked, done = threading.Event(), threading.Event()

    def hold():
        with engine.begin() as connection:
            connection.execute(
                text("SELECT 1 FROM symbols WHERE symbol = :symbol FOR UPDATE"), {"symbol": symbol}
            )
            locked.set()
            done.wait(at_most_s)

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait()
    try:
        yield
    finally:
        done.set()
        holder.join()
