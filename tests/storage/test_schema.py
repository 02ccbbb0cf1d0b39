"""The schema step at start: missing tables and indexes created, existing ones left alone."""

from sqlalchemy import inspect, text

from app.storage.schema import create_schema


def index_names(engine, table: str) -> set[str]:
    with engine.connect() as connection:
        return {index["name"] for index in inspect(connection).get_indexes(table)}


def test_an_index_added_since_the_database_was_created_is_created_at_start(schema_engine):
    with schema_engine.begin() as connection:
        connection.execute(text("DROP INDEX tape"))
    assert "tape" not in index_names(schema_engine, "executions")
    create_schema(schema_engine)
    assert "tape" in index_names(schema_engine, "executions")


def test_creating_the_schema_again_changes_nothing(schema_engine):
    before = index_names(schema_engine, "orders")
    create_schema(schema_engine)
    assert (
        index_names(schema_engine, "orders")
        == before
        >= {
            "book_buys",
            "book_sells",
            "open_orders_by_account",
        }
    )
