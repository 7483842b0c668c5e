"""The Open Inference Protocol's REST wire formats: JSON tensors and binary tensor data."""

from serving.protocol.codec import (
    InferRequest,
    InputTensor,
    RequestedOutput,
    decode_request,
    encode_response,
)

__all__ = ["InferRequest", "InputTensor", "RequestedOutput", "decode_request", "encode_response"]
