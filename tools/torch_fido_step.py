#!/usr/bin/env python3
"""The same FIDO step as fido's `fido step resnet50 b8 blur` bench case, in PyTorch eager.

ResNet-50 with random weights (the speed does not depend on the values), one 224x224 image,
B = 8 Concrete masks at temperature 0.1 drawn per input pixel from 56x56 logits upsampled
bilinearly (align_corners), the Blur in-filler (computed once: it does not depend on the
mask), the SSR loss on the target's log-odds, backward to the logits and an Adam step with
linear decay and the regulariser ramp, as fido does. fp32 throughout, with TF32 off, as
fido computes in fp32.

Prints one JSON object: milliseconds per step (median of the timed steps, CUDA events) and
the wall time of a 300-step explanation, so tools/device-check.sh can compare.

    python3 tools/torch_fido_step.py [--steps 300] [--batch 8] [--device cuda]
"""

import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 (fido uses fp32)")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
        import torchvision
    except ImportError as e:
        print(json.dumps({"error": f"PyTorch or torchvision missing: {e}"}))
        return 1
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"error": "torch.cuda is not available"}))
        return 1
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(1, 3, 224, 224, device=dev) * 2 - 1

    # Blur: Gaussian sigma 10, radius 30, reflect-101 border (torch's "reflect").
    sigma, radius = 10.0, 30
    t = torch.arange(-radius, radius + 1, device=dev, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    bg = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), g, groups=3)
    bg = F.conv2d(F.pad(bg, (0, 0, radius, radius), mode="reflect"), g.transpose(2, 3), groups=3)

    with torch.no_grad():
        target = int(model(x).argmax(1))
    logit_p = torch.zeros(1, 1, 56, 56, device=dev, requires_grad=True)
    lr, steps, lam, temp = 0.05, args.steps, 1e-3, 0.1
    opt = torch.optim.Adam([logit_p], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))

    def step(i):
        up = F.interpolate(logit_p, size=(224, 224), mode="bilinear", align_corners=True)
        u = torch.rand(args.batch, 1, 224, 224, device=dev).clamp(1e-6, 1 - 1e-6)
        z = torch.sigmoid((up + torch.log(u) - torch.log1p(-u)) / temp)
        keep = 1 - z
        mixed = x * keep + (1 - keep) * bg
        logits = model(mixed)
        lp = F.log_softmax(logits, 1)
        others = torch.cat([lp[:, :target], lp[:, target + 1:]], 1)
        score = (lp[:, target] - torch.logsumexp(others, 1)).mean()
        rw = min(i / 30.0, 1.0)
        loss = -score + rw * lam * (1 - torch.sigmoid(up)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return score

    for i in range(5):  # warm-up: cuDNN autotuning, allocator
        step(i)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    times = []
    for i in range(20 if cuda else 3):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step(i)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        else:
            start = time.perf_counter()
            step(i)
            times.append((time.perf_counter() - start) * 1e3)
    # A whole explanation, fresh parameters, as fido's bench times it.
    with torch.no_grad():
        logit_p.zero_()
    opt = torch.optim.Adam([logit_p], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
    sync()
    start = time.perf_counter()
    for i in range(steps):
        score = step(i)
    final = float(score)
    sync()
    wall = time.perf_counter() - start
    print(json.dumps({
        "name": f"pytorch fido step resnet50 b{args.batch} blur",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(dev) if cuda else "cpu",
        "tf32": args.tf32,
        "ms_median": statistics.median(times),
        "ms_min": min(times),
        "explain_seconds": wall,
        "steps": steps,
        "final_score": final,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
