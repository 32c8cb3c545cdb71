"""Run in NannyML's own virtualenv: CBPE fitted on a reference, estimated per chunk.

Usage: ``python cbpe.py REFERENCE.parquet ANALYSIS.parquet CHUNK_SIZE``; prints a JSON list,
one object per chunk: ``{metric: {"value", "sampling_error"}}``.
"""

import json
import sys
import warnings

import nannyml
import pandas as pd

METRICS = ["accuracy", "precision", "recall", "f1", "roc_auc"]

warnings.simplefilter("ignore")
reference = pd.read_parquet(sys.argv[1])
analysis = pd.read_parquet(sys.argv[2])
estimator = nannyml.CBPE(
    y_pred_proba="proba",
    y_pred="pred",
    y_true="label",
    problem_type="classification_binary",
    metrics=METRICS,
    chunk_size=int(sys.argv[3]),
)
estimator.fit(reference)
result = estimator.estimate(analysis).to_df()
print(
    json.dumps(
        [
            {
                m: {
                    "value": float(chunk[(m, "value")]),
                    "sampling_error": float(chunk[(m, "sampling_error")]),
                }
                for m in METRICS
            }
            for _, chunk in result.iterrows()
            if chunk[("chunk", "period")] == "analysis"
        ]
    )
)
