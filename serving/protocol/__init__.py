"""The Open Inference Protocol's REST wire formats: JSON tensors and binary tensor data."""

from serving.protocol.codec import (
    HEADER_LENGTH,
    InferRequest,
    InputTensor,
    RequestedOutput,
    decode_request,
    encode_response,
)

__all__ = ["HEADER_LENGTH", "InferRequest", "InputTensor", "RequestedOutput", "decode_request",
           "encode_response"]
