"""The schema's migrations on PostgreSQL: up from nothing, down to nothing, up again, and the
migrated schema is exactly what the models say."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from peaceland.api import migrate
from peaceland.api.db import make_engine
from peaceland.api.models import Base


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(engine: Engine):
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head(engine)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    assert differences == []
    assert _tables(engine) == set(Base.metadata.tables)


def test_every_revision_goes_down_and_up_again(engine: Engine):
    """Down to nothing and up again (0002's way down keeps its wider columns: the models are
    compared with the database after the way up, in the test above)."""
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert _tables(engine) == set()
    query = "SELECT count(*) FROM pg_class WHERE relkind = 'S' AND relname = 'drone_key_changes'"
    with engine.connect() as connection:
        assert connection.exec_driver_sql(query).scalar_one() == 0
    migrate.upgrade(engine)
    assert _tables(engine) == set(Base.metadata.tables)


def test_upgrading_twice_changes_nothing(engine: Engine):
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head(engine)


def test_upgrading_from_the_previous_revision_keeps_the_data_and_prices_its_days(engine: Engine):
    migrate.upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO plans VALUES ('city', 'City', 5, 100, 1, 90, 6, 2, 1000, 300, 1, "
            "now(), now())"
        )
        connection.exec_driver_sql(
            "INSERT INTO forces (id, plan_id, created_at) VALUES ('lyon', 'city', now())"
        )
        connection.exec_driver_sql("INSERT INTO daily_usage VALUES ('lyon', '2026-11-02', 42, 0)")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        day = connection.exec_driver_sql(
            "SELECT reports_accepted, plan_id, price_per_million_reports_cents FROM daily_usage"
        ).one()
    assert tuple(day) == (42, "city", 300)
    # Going back keeps an archived force's rows (an audit trail survives a rollback).
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO daily_usage (force_id, day, reports_accepted, alerts_raised) "
            "VALUES ('lyon~1796000000000', '2026-11-01', 7, 0)"
        )
    migrate.downgrade(engine, "0001")
    with engine.connect() as connection:
        kept = connection.exec_driver_sql("SELECT force_id FROM daily_usage").scalars().all()
    assert sorted(kept) == ["lyon", "lyon~1796000000000"]
