"""The KServe Python model server (kserve/kserve) serving a repository model's artifact over
the V2 protocol: its own request parsing, routing and response encoding, one forward per
request (KServe batches in a separate sidecar, not in the model server).

Runs in its own virtual environment (``bench.peers``): torch, numpy and KServe only.
"""

from __future__ import annotations

import uuid

import kserve
import torch
from artifact import arguments, load  # beside this script: run by path, not as a package
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class V2Model(kserve.Model):
    def __init__(self, name: str, artifact: str, output: str) -> None:
        super().__init__(name)
        self.artifact, self.output = artifact, output

    def load(self) -> bool:
        self.module = load(self.artifact)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        x = torch.from_numpy(payload.inputs[0].as_numpy())
        with torch.inference_mode():
            y = self.module(x)
        y = (y[0] if isinstance(y, tuple | list) else y).numpy()
        out = InferOutput(name=self.output, shape=list(y.shape), datatype="FP32")
        out.set_data_from_numpy(y, binary_data=False)
        return InferResponse(model_name=self.name, infer_outputs=[out],
                             response_id=payload.id or str(uuid.uuid4()))


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    model = V2Model(args.model, args.artifact, args.output)
    model.load()
    kserve.ModelServer(http_port=args.port, grpc_port=args.port + 1, enable_grpc=False,
                       workers=1).start([model])


if __name__ == "__main__":
    main()
