"""LitServe (lightning-ai/LitServe) serving a repository model's artifact with its own batching,
speaking the V2 JSON infer body at the same route so the same load drives it unchanged.

Runs in its own virtual environment (``bench.peers``): torch, numpy and LitServe only.
"""

from __future__ import annotations

import litserve as ls
import numpy as np
import torch
from artifact import arguments, load  # beside this script: run by path, not as a package


class V2Api(ls.LitAPI):
    def __init__(self, artifact: str, model: str, output: str, **options) -> None:
        super().__init__(api_path=f"/v2/models/{model}/infer", **options)
        self.artifact, self.model_name, self.output = artifact, model, output

    def setup(self, device) -> None:
        self.module = load(self.artifact)

    def decode_request(self, request: dict) -> np.ndarray:
        tensor = request["inputs"][0]  # one row per request, as the benchmark sends
        return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"][1:])

    def batch(self, inputs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(inputs))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            y = self.module(x)
        return y[0] if isinstance(y, tuple | list) else y

    def unbatch(self, output: torch.Tensor) -> list[np.ndarray]:
        return list(output.numpy())

    def encode_response(self, row: np.ndarray) -> dict:
        return {"model_name": self.model_name,
                "outputs": [{"name": self.output, "datatype": "FP32",
                             "shape": [1, *row.shape], "data": row.reshape(-1).tolist()}]}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    args = parser.parse_args()
    api = V2Api(args.artifact, args.model, args.output, max_batch_size=args.max_batch_size,
                batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=args.port, log_level="warning",
               generate_client_file=False)


if __name__ == "__main__":
    main()
