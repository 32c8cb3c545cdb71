"""Run in NannyML's own virtualenv: DLE fitted on a reference, estimated per chunk.

Usage: ``python dle.py REFERENCE.parquet ANALYSIS.parquet CHUNK_SIZE``: the files hold the
features, ``pred`` and (the reference) ``label``; every other column is a feature. Prints
a JSON list, one object per chunk: ``{metric: {"value", "sampling_error"}}``.
"""

import json
import os
import sys
import warnings

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # no network: no usage reports to NannyML

import nannyml
import pandas as pd

METRICS = ["mae", "rmse"]

warnings.simplefilter("ignore")
pd.set_option("future.infer_string", False)  # pandas 3 infers Arrow text, which NannyML reshapes
reference = pd.read_parquet(sys.argv[1])
analysis = pd.read_parquet(sys.argv[2])
features = [c for c in reference.columns if c not in ("pred", "label")]
for frame in (reference, analysis):  # NannyML reshapes text columns: NumPy objects, not Arrow
    for c in features:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            frame[c] = frame[c].astype(object)
estimator = nannyml.DLE(
    feature_column_names=features,
    y_pred="pred",
    y_true="label",
    metrics=METRICS,
    chunk_size=int(sys.argv[3]),
    hyperparameters={"verbose": -1},  # LightGBM's defaults, without its log on stdout
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
