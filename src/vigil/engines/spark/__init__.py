"""vigil on Apache Spark (PySpark 4.x, extra ``spark``): the same models and the same scores as
the local engine, on DataFrames of any size.

- :func:`session` starts (or joins) a Spark session: ``local[*]`` on 127.0.0.1 by default, any
  cluster with ``master``; it checks for Java first.
- :func:`fit` fits a :class:`vigil.Model` on a Spark DataFrame (on a bounded, reproducible
  sample collected to the driver: the first rows of each series in time order).
- :func:`score` adds ``score``, ``threshold``, ``is_anomaly``, ``event`` and ``driver`` to any
  DataFrame, equal to :meth:`vigil.Model.detect` on the same rows; on a streaming DataFrame,
  with each series' scorer kept across micro-batches (:mod:`.stream_scoring`).
- :mod:`.kafka_source` is ``vigil-kafka``, a Kafka source for Structured Streaming on Spark's
  Python Data Source API; :mod:`.kafka_stream` is ``vigil stream --engine spark``.
- :func:`executor_errors` turns a vigil error raised on an executor back into itself.
"""

from vigil.engines.spark.errors import executor_errors
from vigil.engines.spark.fitting import fit
from vigil.engines.spark.scoring import score
from vigil.engines.spark.session import session

__all__ = ["executor_errors", "fit", "score", "session"]
