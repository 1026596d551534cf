"""PyTorch goldens for the classifier tests, with deterministic synthetic weights.

No weights are committed: both this script and `src/models/synthetic.rs` generate the same
state_dict bit for bit. Element i of tensor `name` is
    u = ((splitmix64(fnv1a64(name) ^ i) >> 11) * 2^-53) * 2 - 1      in [-1, 1)
scaled in float64 and rounded once to float32:
    conv / linear weight (rank >= 2)  u * sqrt(6 / fan_in)
    batch-norm weight (rank 1)        (1 + 0.2u) * g, g = 0.2 for the last BN of a ResNet
                                      residual branch, else 1
    bias, running_mean                0.1u
    running_var                       1 + 0.5|u|

For each torchvision architecture the script loads the weights, runs eval mode in float64 on
a small fixed input, and saves (float32) the input, the logits, the labels and the gradient
of sum_i log_softmax(logits)[i, label_i] with respect to the input, plus the first values of
a few weight tensors so the Rust test can check the two generators agree.

Run from the repository root with PyTorch and torchvision installed (a venv outside the repo):
    python tools/golden_models.py
Writes tests/fixtures/models/<model>.safetensors.
"""
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from safetensors.numpy import save_file

OUT = "tests/fixtures/models"
RESIDUAL_GAIN = 0.2
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)

# model name -> (input shape, labels)
CASES = {
    "resnet18": ((2, 3, 32, 32), [3, 917]),
    "resnet34": ((1, 3, 32, 32), [101]),
    "resnet50": ((1, 3, 32, 32), [500]),
    "resnet101": ((1, 3, 32, 32), [640]),
    "resnet152": ((1, 3, 32, 32), [321]),
    "vgg11": ((1, 3, 32, 32), [5]),
    "vgg13": ((1, 3, 32, 32), [250]),
    "vgg16": ((1, 3, 32, 32), [730]),
    "vgg19": ((1, 3, 32, 32), [12]),
    "alexnet": ((1, 3, 63, 63), [42]),
}

# Tensors whose first values are stored, to pin the generator.
PROBES = ["features.0.weight", "conv1.weight", "bn1.running_var", "fc.bias", "classifier.6.bias"]
PROBE_LEN = 16


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def unit(name: str, n: int) -> np.ndarray:
    """u in [-1, 1) for elements 0..n of tensor `name`, float64."""
    h = np.uint64(fnv1a64(name))
    out = np.empty(n, dtype=np.float64)
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, n, chunk):
            i = np.arange(start, min(n, start + chunk), dtype=np.uint64)
            x = splitmix64(h ^ i)
            out[start:start + len(i)] = ((x >> np.uint64(11)).astype(np.float64) * 2.0**-53) * 2.0 - 1.0
    return out


def is_residual_last_bn(model: str, name: str) -> bool:
    if not model.startswith("resnet"):
        return False
    last = 2 if model in ("resnet18", "resnet34") else 3
    return name.startswith("layer") and name.endswith(f".bn{last}.weight")


def tensor_values(model: str, name: str, shape) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    u = unit(name, n)
    if name.endswith(".running_var"):
        v = 1.0 + 0.5 * np.abs(u)
    elif name.endswith(".running_mean") or name.endswith(".bias"):
        v = 0.1 * u
    elif len(shape) == 1:
        gain = RESIDUAL_GAIN if is_residual_last_bn(model, name) else 1.0
        v = (1.0 + 0.2 * u) * gain
    else:
        fan_in = max(n // max(shape[0], 1), 1)
        v = u * math.sqrt(6.0 / fan_in)
    return v.astype(np.float32).reshape(shape)


def synthetic_model(name: str) -> torch.nn.Module:
    model = getattr(torchvision.models, name)(weights=None)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        state[key] = torch.from_numpy(tensor_values(name, key, tuple(value.shape)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    return model.double().eval()


def input_for(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for seed, (name, (shape, labels)) in enumerate(CASES.items()):
        model = synthetic_model(name)
        x_np = input_for(shape, 1000 + seed)
        x = torch.from_numpy(x_np).double().requires_grad_(True)
        scales = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, o: scales.append(o.detach().abs().max().item()))
            for m in model.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
        ]
        logits = model(x)
        for h in hooks:
            h.remove()
        picked = F.log_softmax(logits, dim=1)[torch.arange(len(labels)), torch.tensor(labels)]
        picked.sum().backward()
        state = model.state_dict()
        probes = {
            f"probe.{p}": state[p].flatten()[:PROBE_LEN].float().numpy() for p in PROBES if p in state
        }
        tensors = {
            "input": x_np,
            "labels": np.array(labels, dtype=np.int64),
            "logits": logits.detach().float().numpy(),
            "grad_input": x.grad.float().numpy(),
            **probes,
        }
        path = f"{OUT}/{name}.safetensors"
        save_file(
            {k: np.ascontiguousarray(v) for k, v in tensors.items()},
            path,
            metadata={"model": name, "torch": torch.__version__, "torchvision": torchvision.__version__},
        )
        size = os.path.getsize(path)
        total += size
        lg = logits.detach()
        print(
            f"{name:10s} input {list(shape)} logit std {lg.std().item():.3f} max|logit| {lg.abs().max().item():.3f} "
            f"max|conv/linear out| {max(scales):.2f} (min over layers {min(scales):.2f}) "
            f"|grad| {x.grad.norm().item():.3e} {size / 1024:.0f} KiB"
        )
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
