"""PyTorch golden for the composite gradient test.

conv 3x3 -> batch norm (inference) -> relu -> max pool 2x2 s2 -> depthwise conv 3x3
-> global average pool -> linear -> log-softmax, and the gradient of sum(log_softmax * r)
with respect to the input, all in float64 so the fixture is exact to f32 precision.

Run from the repository root with PyTorch installed (any venv outside the repo):
    python tools/golden_composite.py
Writes tests/fixtures/composite.safetensors.
"""
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(7)
dt = torch.float64
N, C_IN, H, W, C, K = 2, 3, 9, 9, 4, 5

t = {
    "input": torch.randn(N, C_IN, H, W, dtype=dt),
    "conv1.weight": torch.randn(C, C_IN, 3, 3, dtype=dt) * 0.4,
    "conv1.bias": torch.randn(C, dtype=dt) * 0.1,
    "bn.weight": torch.rand(C, dtype=dt) + 0.5,
    "bn.bias": torch.randn(C, dtype=dt) * 0.1,
    "bn.running_mean": torch.randn(C, dtype=dt) * 0.1,
    "bn.running_var": torch.rand(C, dtype=dt) + 0.5,
    "dw.weight": torch.randn(C, 1, 3, 3, dtype=dt) * 0.5,
    "dw.bias": torch.randn(C, dtype=dt) * 0.1,
    "fc.weight": torch.randn(K, C, dtype=dt) * 0.5,
    "fc.bias": torch.randn(K, dtype=dt) * 0.1,
    "cotangent": torch.randn(N, K, dtype=dt),
}
EPS = 1e-5

x = t["input"].clone().requires_grad_(True)
h = F.conv2d(x, t["conv1.weight"], t["conv1.bias"], stride=1, padding=1)
h = F.batch_norm(h, t["bn.running_mean"], t["bn.running_var"], t["bn.weight"], t["bn.bias"], training=False, eps=EPS)
h = F.relu(h)
h = F.max_pool2d(h, 2, 2)
h = F.conv2d(h, t["dw.weight"], t["dw.bias"], padding=1, groups=C)
h = F.adaptive_avg_pool2d(h, 1).flatten(1)
h = F.linear(h, t["fc.weight"], t["fc.bias"])
y = F.log_softmax(h, dim=1)
(y * t["cotangent"]).sum().backward()

t["log_softmax"] = y.detach()
t["grad_input"] = x.grad.detach()
save_file({k: v.to(torch.float32).contiguous() for k, v in t.items()}, "tests/fixtures/composite.safetensors",
          metadata={"bn_eps": str(EPS), "torch": torch.__version__})
print("wrote tests/fixtures/composite.safetensors", {k: list(v.shape) for k, v in t.items()})
