"""Run by the cache tests in a fresh process: compile a small conv net, print stats, save the output."""
import json
import sys

import torch

import torch_wm_backend

cache_dir, out_path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, 8, 3, padding=1)).eval()
x = torch.randn(1, 3, 16, 16)
options = {"trials": 2, "cost_model": "random", "cache_dir": cache_dir, "eager_guard": False}
with torch.no_grad():
    y = torch.compile(model, backend="tvm_wm", options=options)(x)
torch.testing.assert_close(y, model(x), atol=1e-4, rtol=1e-4)
torch.save(y, out_path)
print(json.dumps(torch_wm_backend.stats()))
