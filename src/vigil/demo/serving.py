"""Demo stage: the registered model answers over HTTP through every protocol it speaks."""

from __future__ import annotations

import json
from typing import Any

import httpx
from rich.console import Console

from vigil.demo._data import MODEL_NAME


def _example(console: Console, title: str, method: str, url: str, body: Any | None) -> None:
    shown = "" if body is None else f" -H 'content-type: application/json' -d '{json.dumps(body)}'"
    console.print(f"   [dim]{title}:[/] curl -s -X {method} {url}{shown}", soft_wrap=True)


def serve_traffic(url: str, rows: Any, expected: list[int], console: Console) -> dict[str, Any]:
    """Send ``rows`` through the native, Open Inference Protocol v2 and MLflow routes, check
    each answer equals ``expected`` and print one example call per protocol."""

    records = rows.to_dict(orient="records")
    columns = list(rows.columns)
    answers: dict[str, list[int]] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        native = http.post(
            f"/v1/models/{MODEL_NAME}/predict",
            json={"instances": records, "return_proba": True},
        )
        native.raise_for_status()
        answers["native"] = native.json()["predictions"]

        tensor = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), len(columns)],
                    "datatype": "FP64",
                    "data": rows.to_numpy(dtype=float).ravel().tolist(),
                }
            ]
        }
        v2 = http.post(f"/v2/models/{MODEL_NAME}/infer", json=tensor)
        v2.raise_for_status()
        answers["v2"] = [int(x) for x in v2.json()["outputs"][0]["data"]]

        split = {"dataframe_split": {"columns": columns, "data": rows.to_numpy().tolist()}}
        mlflow = http.post("/invocations", json=split)
        mlflow.raise_for_status()
        answers["mlflow"] = mlflow.json()["predictions"]

    for protocol, got in answers.items():
        same = got == expected
        console.print(f"   {protocol:>6}: predictions {got} — identical to the model: {same}")
        if not same:
            raise SystemExit(f"demo: the {protocol} route answered differently from the model")

    one = {k: round(float(v), 4) for k, v in list(records[0].items())[:2]}
    console.print("   example calls (bodies trimmed to two features; send all 30):")
    _example(
        console,
        "native",
        "POST",
        f"{url}/v1/models/{MODEL_NAME}@production/predict",
        {"inputs": one, "return_proba": True},
    )
    _example(
        console,
        "v2    ",
        "POST",
        f"{url}/v2/models/{MODEL_NAME}/infer",
        {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [v]} for c, v in one.items()
            ]
        },
    )
    _example(console, "mlflow", "POST", f"{url}/invocations", {"dataframe_records": [one]})
    _example(console, "ops   ", "GET", f"{url}/metrics", None)
    console.print(f"   OpenAPI: {url}/openapi.json   docs: {url}/docs")
    return answers
