"""Writing golden files: one safetensors file per family of cases.

Layout (read by the `sadtalker-parity` crate): tensors named `<case>.<role>` (float32), and
`__metadata__["cases"]` = JSON list of `{"name": ..., "op": ..., ...params}` in order.
"""
import json
import os

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "fixtures")


class GoldenFile:
    def __init__(self, relpath: str):
        self.path = os.path.join(FIXTURES, relpath)
        self.tensors = {}
        self.cases = []

    def case(self, name: str, params: dict, **tensors):
        assert all(c["name"] != name for c in self.cases), name
        self.cases.append({"name": name, **params})
        for role, t in tensors.items():
            if t is None:
                continue
            if hasattr(t, "detach"):
                t = t.detach().cpu().numpy()
            self.tensors[f"{name}.{role}"] = np.ascontiguousarray(np.asarray(t, dtype=np.float32))

    def write(self):
        from safetensors.numpy import save_file

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        save_file(self.tensors, tmp, metadata={"cases": json.dumps(self.cases)})
        os.replace(tmp, self.path)
        size = os.path.getsize(self.path)
        print(f"wrote {os.path.relpath(self.path, ROOT)}: {len(self.cases)} cases, {size / 1024:.1f} KiB")
