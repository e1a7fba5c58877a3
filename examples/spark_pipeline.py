"""The Spark sensor pipeline, done right: read a sensor CSV, flag values by two-sided z-scores
and by IQR fences, then score every row with an unsupervised Isolation Forest over several
columns together, and show the anomalies.

    python examples/spark_pipeline.py [sensors.csv] [--train-rows N]

Without a path it reads vigil's bundled plant data and fits on its clean first week. Needs
``pip install 'vigil[spark]'`` and Java 17.
"""

import argparse

from pyspark.sql import functions as F

from vigil import sample_data
from vigil import spark as vigil_spark

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("path", nargs="?", default=str(sample_data.path()))
parser.add_argument("--train-rows", type=int, default=None)
args = parser.parse_args()
train_rows = args.train_rows or (sample_data.TRAIN_ROWS if args.path == str(sample_data.path())
                                 else None)

spark = vigil_spark.session()  # local[*] on 127.0.0.1; session("spark://host:7077") for a cluster
df = spark.read.csv(args.path, header=True, inferSchema=True)  # timestamps stay timestamps
channels = [f.name for f in df.schema.fields if f.dataType.typeName() in ("double", "integer")
            and f.name != "label"]

# Two-sided z-scores: |x - mean| / stddev > 3, high and low; a constant column (stddev 0) has
# no z-score rather than a division by zero.
stats = df.agg(*[F.mean(c).alias(f"{c}_mean") for c in channels],
               *[F.stddev(c).alias(f"{c}_std") for c in channels]).first()
z_flags = [(F.abs(F.col(c) - stats[f"{c}_mean"]) / F.lit(stats[f"{c}_std"] or None) > 3)
           for c in channels]
# IQR fences from exact quantiles: outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR].
quartiles = df.approxQuantile(channels, [0.25, 0.75], 0.0)
iqr_flags = [(F.col(c) < q1 - 1.5 * (q3 - q1)) | (F.col(c) > q3 + 1.5 * (q3 - q1))
             for c, (q1, q3) in zip(channels, quartiles)]
flags = df.select(*[F.sum(f.cast("int")).alias(f"z_{c}") for f, c in zip(z_flags, channels)],
                  *[F.sum(f.cast("int")).alias(f"iqr_{c}") for f, c in zip(iqr_flags, channels)])
print("Rows outside 3 sigma and outside the IQR fences, per column:")
flags.show(truncate=False)

# An unsupervised Isolation Forest on all the columns together (no labels used), fitted on the
# first rows in time order, with its threshold and alarm rules; every row scored on Spark.
model = vigil_spark.fit(df, "isolation_forest", channels=channels, train_rows=train_rows)
scored = vigil_spark.score(df, model)
with vigil_spark.executor_errors():
    anomalies = scored.where("is_anomaly").persist()
    events = anomalies.groupBy("event").agg(F.min("timestamp").alias("start"),
                                            F.max("timestamp").alias("end"),
                                            F.count("*").alias("rows"),
                                            F.max("score").alias("peak"))
    print(f"Isolation Forest ({model.training_['sample']}; threshold {model.threshold_:.3f}): "
          f"{anomalies.count()} anomalous rows of {df.count()} in {events.count()} events")
    events.orderBy("event").show(truncate=False)
spark.stop()
