"""aiinfra serving runtime: an Open Inference Protocol (KServe V2) server with dynamic batching."""

__version__ = "0.1.0"
