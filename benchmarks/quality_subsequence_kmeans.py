"""Detection quality of ``subsequence_kmeans`` on the labelled collections in
/work/shared/datasets, next to TSB-AD's KMeansAD on skab (it was not run on nab; Sub_KNN, the
nearest windowed distance method there, stands in) from /work/shared/datasets/BASELINES.md.
Same protocol and measure as ``quality_subsequence_pca.py``.

    .venv/bin/python benchmarks/quality_subsequence_kmeans.py
    .venv/bin/python benchmarks/quality_subsequence_kmeans.py --set n_clusters=20 --per-series
"""

from __future__ import annotations

import sys

from quality_subsequence_pca import main

if __name__ == "__main__":
    from vigil.detectors.subsequence_kmeans import SubsequenceKMeans

    sys.exit(main(SubsequenceKMeans, {"nab": "Sub_KNN", "skab": "KMeansAD"}))
