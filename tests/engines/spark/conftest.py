"""One local Spark session for the whole test run (two cores, few shuffle partitions, no UI)."""

import pytest

import pyspark  # noqa: F401  vigil[spark] is in the dev extra: missing, the tests fail, never skip


@pytest.fixture(scope="session")
def spark():
    from vigil.engines.spark import session

    running = session("local[2]", conf={"spark.sql.shuffle.partitions": "4",
                                        "spark.default.parallelism": "4"})
    yield running
    running.stop()
