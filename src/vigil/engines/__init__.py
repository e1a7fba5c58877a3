"""Engines that run a fitted :class:`vigil.Model` somewhere other than one Python process: each
in its own sub-package, with its own optional dependencies (``stream``: Kafka). The core never
imports them."""
