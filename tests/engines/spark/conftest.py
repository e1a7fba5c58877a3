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


@pytest.fixture(scope="session")
def standalone(tmp_path_factory):
    """A Spark standalone cluster on loopback, started as an operator starts one: a Master and
    a Worker (2 cores, 2 GiB) through ``spark-class``; yields its master URL. Jobs reach it
    from another process (a test's SparkSession is the local one)."""
    import os
    import socket
    import subprocess
    import time
    from pathlib import Path

    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("standalone")

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port = free_port()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(logs / "work")}
    started = []
    try:
        for args, log in [
                (["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port",
                  str(port), "--webui-port", str(free_port())], "master.log"),
                (["org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
                  "--host", "127.0.0.1", "--cores", "2", "--memory", "2g", "--webui-port",
                  str(free_port())], "worker.log")]:
            with open(logs / log, "w") as out:
                started.append(subprocess.Popen([str(home / "bin" / "spark-class"), *args],
                                                stdout=out, stderr=subprocess.STDOUT, env=env))
        deadline = time.monotonic() + 120
        while "Registering worker" not in (logs / "master.log").read_text():
            assert time.monotonic() < deadline, (logs / "master.log").read_text()[-2000:]
            assert all(p.poll() is None for p in started), (logs / "worker.log").read_text()
            time.sleep(0.2)  # the master's log is the only sign the worker has joined
        yield f"spark://127.0.0.1:{port}"
    finally:
        for p in reversed(started):
            p.terminate()
            p.wait(30)
