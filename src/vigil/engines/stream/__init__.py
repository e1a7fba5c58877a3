"""Real-time detection on Kafka (``pip install 'vigil[stream]'``): the ``vigil stream`` worker,
``vigil produce`` and the embedded broker of ``vigil broker``.

- :class:`Worker` with :class:`StreamConfig`: consume readings, score each series with a saved
  model through :class:`vigil.scoring.StreamScorer`, publish results; at-least-once or
  exactly-once, per-series state in a changelog topic (:mod:`.worker`).
- :func:`produce_rows`: replay a file into a topic (:mod:`.produce`).
- :class:`EmbeddedBroker`: a Kafka-protocol broker on loopback, for trying vigil out and for
  tests (:mod:`.broker`).
"""

from vigil.engines.stream.broker import EmbeddedBroker
from vigil.engines.stream.produce import produce_rows
from vigil.engines.stream.worker import StreamConfig, Worker

__all__ = ["EmbeddedBroker", "StreamConfig", "Worker", "produce_rows"]
