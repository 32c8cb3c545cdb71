"""Serving: one worker's HTTP server (native JSON, Open Inference v2, MLflow), its input
validation, micro-batching, endpoints, capture and metrics."""
