"""Starting Spark for vigil: Java checked first, the driver's Python on the executors, loopback
unless a cluster is named, quiet consoles."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from typing import Any

from vigil._optional import require
from vigil.errors import ConfigError

__all__ = ["session", "check_java"]

_PANDAS_NOTE = "PySpark does not yet fully support pandas"
_JAVA_HELP = ("Spark needs Java 17 or newer: install it (on Debian or Ubuntu: apt-get install "
              "openjdk-17-jre-headless) or set JAVA_HOME.")


def check_java() -> str:
    """The ``java`` that Spark will start (``$JAVA_HOME/bin/java``, else on PATH); a
    ConfigError saying how to install it when there is none or it is older than 17."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise ConfigError(f"no Java found. {_JAVA_HELP}")
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True,
                              timeout=30).stderr
    except (OSError, subprocess.SubprocessError) as error:
        raise ConfigError(f"{java} -version failed ({error}). {_JAVA_HELP}") from None
    found = re.search(r'version "(\d+)', text)
    if found and int(found.group(1)) < 17:
        raise ConfigError(f"{java} is Java {found.group(1)}. {_JAVA_HELP}")
    return java


def session(master: str | None = None, app_name: str = "vigil",
            conf: dict[str, str] | None = None) -> Any:
    """A SparkSession: the active one if there is one, else a new one on ``master`` (default
    ``local[*]``, bound to 127.0.0.1). ``conf`` adds Spark settings."""
    require("pyspark", "spark", "the Spark engine")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    check_java()
    # Executors run the driver's interpreter, where vigil is installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # pyspark 4.x warns on every pandas conversion that it does not fully support pandas 3;
    # vigil's parity tests cover the conversions it makes, so the note is noise to a user.
    warnings.filterwarnings("ignore", message=_PANDAS_NOTE, category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated",
                            module=r"pyspark\.")
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{_PANDAS_NOTE}:FutureWarning")
    if "PYSPARK_SUBMIT_ARGS" not in os.environ:  # the JVM's own logging: errors only
        log_config = os.path.join(os.path.dirname(__file__), "log4j2.properties")
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f'--driver-java-options "-Dlog4j2.configurationFile=file:{log_config}" pyspark-shell')
    builder = SparkSession.builder.appName(app_name).master(master or "local[*]")
    settings = {"spark.ui.showConsoleProgress": "false",
                "spark.executorEnv.PYTHONWARNINGS": os.environ["PYTHONWARNINGS"],
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.session.timeZone": "UTC"}
    if master is None or master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings.update({"spark.driver.host": "127.0.0.1",
                         "spark.driver.bindAddress": "127.0.0.1", "spark.ui.enabled": "false",
                         # files split in two tasks a core at least: a long series in a few
                         # large files is then scored by every core, evenly
                         "spark.sql.files.minPartitionNum": str(2 * _local_cores(master))})
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _local_cores(master: str | None) -> int:
    """The cores a ``local[N]`` master runs on (``local[*]`` and ``local``: this machine's)."""
    inside = (master or "local[*]").partition("[")[2].partition("]")[0].partition(",")[0]
    return int(inside) if inside.isdigit() else (1 if master == "local" else os.cpu_count() or 1)
