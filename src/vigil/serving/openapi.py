"""A hand-built OpenAPI 3.1 document of the serving routes (``/docs`` draws it).

The document is generated from the route table itself (every route appears, with its
request and response schemas), so it cannot drift from what the server answers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from vigil.version import VERSION

if TYPE_CHECKING:
    from vigil.serving.http import Route

_SCALAR: dict[str, Any] = {"type": ["number", "integer", "string", "boolean", "null"]}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "Stable error code."},
            "message": {"type": "string", "description": "What went wrong, what to do next."},
            "detail": {"type": "object", "description": "field, row, expected, got..."},
            "request_id": {"type": "string"},
        },
    },
    "NativeRequest": {
        "type": "object",
        "description": "Exactly one of instances, columns+data or inputs.",
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "oneOf": [
                        {"type": "object", "additionalProperties": _SCALAR},
                        {"type": "array", "items": _SCALAR},
                    ]
                },
            },
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array", "items": _SCALAR}},
            "inputs": {"type": "object", "additionalProperties": _SCALAR},
            "return_proba": {"type": "boolean", "default": False},
            "passthrough": {
                "type": "object",
                "description": "Fields logged with each row but never given to the model "
                "(sensitive attributes for fairness monitoring): one list per field, a value "
                "per row.",
                "maxProperties": 16,
                "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$"},
                "additionalProperties": {
                    "type": "array",
                    "items": {
                        "oneOf": [
                            {"type": "string", "maxLength": 256},
                            {"type": "number"},
                            {"type": "boolean"},
                            {"type": "null"},
                        ]
                    },
                },
            },
        },
        "additionalProperties": False,
    },
    "NativeResponse": {
        "type": "object",
        "required": ["request_id", "model", "version", "predictions"],
        "properties": {
            "request_id": {"type": "string"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "predictions": {"type": "array", "items": _SCALAR},
            "classes": {"type": "array", "items": _SCALAR},
            "probabilities": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}},
            },
        },
    },
    "ModelList": {
        "type": "object",
        "properties": {
            "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}
        },
    },
    "Model": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "ready": {"type": "boolean"},
            "flavor": {"type": "string"},
            "signature": {"type": "object"},
        },
    },
    "V2Tensor": {
        "type": "object",
        "description": "Values in 'data' (JSON), or sent as raw bytes after the JSON with "
        "parameters.binary_data_size (the binary tensor data extension).",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_size": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Size in bytes of the tensor's raw data after the JSON.",
                    }
                },
            },
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {
                "type": "string",
                "enum": [
                    "BOOL",
                    "UINT8",
                    "UINT16",
                    "UINT32",
                    "UINT64",
                    "INT8",
                    "INT16",
                    "INT32",
                    "INT64",
                    "FP16",
                    "BF16",
                    "FP32",
                    "FP64",
                    "BYTES",
                ],
            },
            "data": {"type": "array"},
        },
    },
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_output": {
                        "type": "boolean",
                        "description": "Send every output as raw bytes after the JSON.",
                    },
                    "explain": {
                        "type": "boolean",
                        "description": "Add the rows' feature attributions: the outputs "
                        "explanation [N, F] and explanation_base_value [N] (FP64), and the "
                        "explain_* response parameters.",
                    },
                    "explain_class": {
                        "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
                        "description": "The class to explain (with explain: true); default "
                        "as on the native explain route.",
                    },
                },
            },
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/V2Tensor"},
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "binary_data": {
                                    "type": "boolean",
                                    "description": "Send this output as raw bytes after "
                                    "the JSON (overrides binary_data_output).",
                                }
                            },
                        },
                    },
                },
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"$ref": "#/components/schemas/V2Tensor"}},
            "parameters": {
                "type": "object",
                "description": "With parameters.explain: explain_method, explain_exact, "
                "explain_output, explain_features and explain_labels (JSON lists as text).",
                "properties": {
                    "explain_method": {"type": "string"},
                    "explain_exact": {"type": "boolean"},
                    "explain_output": {"type": "string"},
                    "explain_features": {"type": "string"},
                    "explain_labels": {"type": "string"},
                },
            },
        },
    },
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "code": {"type": "string"},
            "detail": {"type": "object"},
        },
    },
    "V2ServerMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    },
    "MlflowRequest": {
        "type": "object",
        "description": "Exactly one of dataframe_split, dataframe_records, instances, inputs.",
        "properties": {
            "dataframe_split": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "index": {"type": "array"},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
            },
            "dataframe_records": {"type": "array", "items": {"type": "object"}},
            "instances": {"type": ["array", "object"]},
            "inputs": {"type": ["array", "object"]},
            "params": {"type": "object"},
        },
    },
    "MlflowResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array"}},
    },
    "MlflowError": {
        "type": "object",
        "required": ["error_code", "message"],
        "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Status": {"type": "object", "additionalProperties": True},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(schema)}}}


_ERROR_SCHEMA = {
    "native": "Problem",
    "ops": "Problem",
    "page": "Problem",  # HTML pages are left out of the API (``Route.in_api``)
    "v2": "V2Error",
    "mlflow": "MlflowError",
}


def _operation(route: Route) -> dict[str, Any]:
    error = _ERROR_SCHEMA[route.style]
    responses: dict[str, Any] = {}
    for status, spec in route.responses.items():
        entry: dict[str, Any] = {"description": spec.get("description", "OK")}
        if "schema" in spec:
            entry.update(_json(spec["schema"]))
        elif "text" in spec:
            entry["content"] = {spec["text"]: {"schema": {"type": "string"}}}
        responses[status] = entry
    for status, description in (
        ("400", "Malformed request"),
        ("404", "Unknown model, version or path"),
        ("422", "Input does not match the model signature"),
        ("500", "Server error"),
    ):
        if route.body != "none" or status in ("404", "500"):
            responses.setdefault(status, {"description": description, **_json(error)})
    if route.body != "none":
        responses.setdefault("413", {"description": "Payload too large", **_json(error)})
    if route.needs_json:
        responses.setdefault(
            "415",
            {
                "description": "Content-Type is not application/json (a state-changing "
                "operation needs it, even without a body)",
                **_json(error),
            },
        )
    elif route.prediction:
        responses.setdefault(
            "415",
            {
                "description": "The body is not JSON (send Content-Type: application/json; "
                "a JSON body sent as a form, as curl -d does, is taken too)",
                **_json(error),
            },
        )
    elif route.body != "none":
        responses.setdefault("415", {"description": "Unsupported media type", **_json(error)})
    if route.same_origin:
        responses.setdefault(
            "403", {"description": "Called from another origin's web page", **_json(error)}
        )
    # Refused before the route is known, so always in vigil's own problem format.
    responses.setdefault(
        "421",
        {"description": "Host not answered by this server (DNS rebinding)", **_json("Problem")},
    )
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": list(route.tags),
        "responses": responses,
    }
    if route.role is not None:
        # Needed once authentication is on (always off loopback); /docs's Authorize button.
        operation["security"] = [{"apiKey": []}]
    params = re.findall(r"\{(\w+)\}", route.template)
    if params:
        operation["parameters"] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
            }
            for p in dict.fromkeys(params)
        ]
    if route.request_schema is not None:
        content: dict[str, Any] = {"application/json": {"schema": route.request_schema}}
        if route.body == "json_or_csv":
            content["text/csv"] = {"schema": {"type": "string"}}
        operation["requestBody"] = {"required": True, "content": content}
        if route.body == "json_or_tensors":
            _binary_tensors(operation)
    return operation


_BINARY_BODY = {"type": "string", "format": "binary"}
_HEADER_LENGTH = {"type": "integer", "minimum": 1}


def _binary_tensors(operation: dict[str, Any]) -> None:
    """The binary tensor data extension of a v2 inference operation: its request and its
    answer may be JSON then raw tensor bytes, the JSON's length in a header."""
    operation["requestBody"]["description"] = (
        "JSON, or (binary tensor data extension) the JSON request of "
        "Inference-Header-Content-Length bytes followed by the raw bytes of every input "
        "with parameters.binary_data_size, in input order: little-endian, row-major; "
        "BYTES elements each a 4-byte little-endian length then the bytes."
    )
    operation["requestBody"]["content"]["application/octet-stream"] = {"schema": _BINARY_BODY}
    operation.setdefault("parameters", []).append(
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "description": "Length in bytes of the JSON part when raw tensor data follows.",
            "schema": _HEADER_LENGTH,
        }
    )
    ok = operation["responses"]["200"]
    ok["description"] += (
        "; with outputs asked as binary data (parameters.binary_data, or "
        "binary_data_output), the JSON then their raw bytes in output order"
    )
    ok["content"]["application/octet-stream"] = {"schema": _BINARY_BODY}
    ok["headers"] = {
        "Inference-Header-Content-Length": {
            "description": "Length in bytes of the JSON part, when raw output data follows.",
            "schema": _HEADER_LENGTH,
        }
    }


def document(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document covering ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vigil model server",
            "version": VERSION,
            "description": "Native JSON, Open Inference Protocol v2 and MLflow scoring routes.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `vigil key create`: vk_<id>_<secret>",
                }
            },
        },
    }
