"""Reference DeepFill v1 generator (contextual attention in-painter) in float64 PyTorch,
written from docs/METHOD.md ("CA: DeepFill v1 generator"), with the deterministic random
weights that `fido::inpaint::synthetic_values` draws.

Run with `/root/tv/bin/python tools/ca_reference.py`. Writes
tests/fixtures/inpaint/ca_64.safetensors (2 samples at 64x64: a rectangle and a random blob)
and tests/fixtures/inpaint/ca_256.safetensors (1 sample at 256x256, output subsampled).
"""

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

OUT = "tests/fixtures/inpaint"
C = 32

# (name, cin, cout, k, stride, dilation, upsample, activation)
STAGE1 = [
    ("conv1", 5, C, 5, 1, 1, False, "elu"),
    ("conv2_downsample", C, 2 * C, 3, 2, 1, False, "elu"),
    ("conv3", 2 * C, 2 * C, 3, 1, 1, False, "elu"),
    ("conv4_downsample", 2 * C, 4 * C, 3, 2, 1, False, "elu"),
    ("conv5", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("conv6", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("conv7_atrous", 4 * C, 4 * C, 3, 1, 2, False, "elu"),
    ("conv8_atrous", 4 * C, 4 * C, 3, 1, 4, False, "elu"),
    ("conv9_atrous", 4 * C, 4 * C, 3, 1, 8, False, "elu"),
    ("conv10_atrous", 4 * C, 4 * C, 3, 1, 16, False, "elu"),
    ("conv11", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("conv12", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("conv13_upsample", 4 * C, 2 * C, 3, 1, 1, True, "elu"),
    ("conv14", 2 * C, 2 * C, 3, 1, 1, False, "elu"),
    ("conv15_upsample", 2 * C, C, 3, 1, 1, True, "elu"),
    ("conv16", C, C // 2, 3, 1, 1, False, "elu"),
    ("conv17", C // 2, 3, 3, 1, 1, False, None),
]
XBRANCH = [
    ("xconv1", 5, C, 5, 1, 1, False, "elu"),
    ("xconv2_downsample", C, C, 3, 2, 1, False, "elu"),
    ("xconv3", C, 2 * C, 3, 1, 1, False, "elu"),
    ("xconv4_downsample", 2 * C, 2 * C, 3, 2, 1, False, "elu"),
    ("xconv5", 2 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("xconv6", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("xconv7_atrous", 4 * C, 4 * C, 3, 1, 2, False, "elu"),
    ("xconv8_atrous", 4 * C, 4 * C, 3, 1, 4, False, "elu"),
    ("xconv9_atrous", 4 * C, 4 * C, 3, 1, 8, False, "elu"),
    ("xconv10_atrous", 4 * C, 4 * C, 3, 1, 16, False, "elu"),
]
PM_BEFORE = [
    ("pmconv1", 5, C, 5, 1, 1, False, "elu"),
    ("pmconv2_downsample", C, C, 3, 2, 1, False, "elu"),
    ("pmconv3", C, 2 * C, 3, 1, 1, False, "elu"),
    ("pmconv4_downsample", 2 * C, 4 * C, 3, 2, 1, False, "elu"),
    ("pmconv5", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("pmconv6", 4 * C, 4 * C, 3, 1, 1, False, "relu"),
]
PM_AFTER = [
    ("pmconv9", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("pmconv10", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
]
MERGE = [
    ("allconv11", 8 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("allconv12", 4 * C, 4 * C, 3, 1, 1, False, "elu"),
    ("allconv13_upsample", 4 * C, 2 * C, 3, 1, 1, True, "elu"),
    ("allconv14", 2 * C, 2 * C, 3, 1, 1, False, "elu"),
    ("allconv15_upsample", 2 * C, C, 3, 1, 1, True, "elu"),
    ("allconv16", C, C // 2, 3, 1, 1, False, "elu"),
    ("allconv17", C // 2, 3, 3, 1, 1, False, None),
]


# ---- deterministic weights: splitmix64(fnv1a64(name) ^ i) -> u in [-1, 1) ----
def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def unit(name, n):
    h = np.uint64(fnv1a64(name))
    with np.errstate(over="ignore"):
        z = (h ^ np.arange(n, dtype=np.uint64)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) * 2.0**-53) * 2.0 - 1.0


def scope(name, upsample):
    return f"inpaint_net/{name}/{name}_conv" if upsample else f"inpaint_net/{name}"


def weights_for(layer):
    name, cin, cout, k, _, _, up, _ = layer
    s = scope(name, up)
    hwio = unit(s + "/kernel", k * k * cin * cout) * np.sqrt(3.0 / (k * k * cin))
    hwio = hwio.astype(np.float32).reshape(k, k, cin, cout)
    bias = (unit(s + "/bias", cout) * 0.1).astype(np.float32)
    return hwio, bias


WEIGHTS = {}


def conv_layer(x, layer):
    name, cin, cout, k, stride, dil, up, act = layer
    if name not in WEIGHTS:
        WEIGHTS[name] = weights_for(layer)
    hwio, bias = WEIGHTS[name]
    if up:  # x2 nearest = repetition
        x = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    pads = []
    for n in (x.shape[3], x.shape[2]):  # F.pad order: W then H
        out = -(-n // stride)
        total = max((out - 1) * stride + (k - 1) * dil + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    x = F.pad(x, pads)
    w = torch.from_numpy(hwio).double().permute(3, 2, 0, 1)
    y = F.conv2d(x, w, torch.from_numpy(bias).double(), stride=stride, dilation=dil)
    if act == "elu":
        y = F.elu(y)
    elif act == "relu":
        y = F.relu(y)
    return y


def tf_nearest_index(n_in, n_out):
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
    v = np.arange(n_out, dtype=np.float32) * np.float32(scale)
    fl = np.floor(v)
    r = np.where(v - fl >= np.float32(0.5), fl + 1, fl)  # half away from zero (v >= 0)
    return np.minimum(r.astype(np.int64), n_in - 1)


def resize_nearest(x, oh, ow):
    iy = tf_nearest_index(x.shape[-2], oh)
    ix = tf_nearest_index(x.shape[-1], ow)
    return x[..., iy, :][..., :, ix]


def attention_one(b, m):
    """b: [C, h, w] float64, m: [h, w] (1 = hole) at the same size."""
    ch, h, w = b.shape
    hs, ws = h // 2, w // 2
    bs = resize_nearest(b, hs, ws)
    ms = resize_nearest(m, hs, ws)
    cols = F.unfold(bs[None], 3, padding=1)[0]  # [C*9, L], row-major patches
    patches = cols / torch.clamp(cols.norm(dim=0, keepdim=True), min=1e-4)
    scores = cols.T @ patches  # [P, L]: foreground windows of the same b_s
    mcols = F.unfold(ms[None, None], 3, padding=1)[0]
    mm = (mcols.mean(dim=0) == 0).double()  # [L]

    def fuse(t):
        padded = F.pad(t, (1, 1, 1, 1))
        return padded[:-2, :-2] + padded[1:-1, 1:-1] + padded[2:, 2:]

    n = hs * ws
    colmajor = np.array([(r % hs) * ws + r // hs for r in range(n)])
    inverse = np.argsort(colmajor)
    scores = fuse(scores)
    scores = fuse(scores[colmajor][:, colmajor])[inverse][:, inverse]
    scores = scores * mm[None, :]
    att = torch.softmax(10.0 * scores, dim=1) * mm[None, :]

    bpad = F.pad(b, (1, 1, 1, 1))
    raw = torch.stack([bpad[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] for i in range(hs) for j in range(ws)])
    mixed = (att @ raw.reshape(n, -1)).reshape(n, ch, 4, 4)
    y = torch.zeros(ch, h + 2, w + 2, dtype=torch.float64)
    for p in range(n):
        i, j = divmod(p, ws)
        y[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4] += mixed[p]
    return y[:, 1:-1, 1:-1] / 4.0


def generator(bgr_u8, mask):
    """bgr_u8: [B, 3, H, W] 0..255, mask: [B, 1, H, W] (1 = hole). Returns a dict."""
    x = torch.from_numpy((bgr_u8.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float64))
    m = torch.from_numpy(mask.astype(np.float64))
    x_in = x * (1 - m)
    ones = torch.ones_like(m)
    t = torch.cat([x_in, ones, ones * m], 1)
    for layer in STAGE1:
        t = conv_layer(t, layer)
    stage1 = t.clamp(-1, 1)
    now = torch.cat([stage1 * m + x_in * (1 - m), ones, ones * m], 1)
    xb = now
    for layer in XBRANCH:
        xb = conv_layer(xb, layer)
    pm = now
    for layer in PM_BEFORE:
        pm = conv_layer(pm, layer)
    H, W = mask.shape[2:]
    feat_mask = resize_nearest(m, H // 4, W // 4)
    pm = torch.stack([attention_one(pm[i], feat_mask[i, 0]) for i in range(pm.shape[0])])
    for layer in PM_AFTER:
        pm = conv_layer(pm, layer)
    t = torch.cat([xb, pm], 1)
    for layer in MERGE:
        t = conv_layer(t, layer)
    stage2 = t.clamp(-1, 1)
    out = stage2 * m + x_in * (1 - m)
    u8 = np.floor(np.clip((out.numpy() + 1) * 127.5, 0, 255))
    return {"stage1": stage1.numpy(), "stage2": stage2.numpy(), "output": out.numpy(), "output_u8": u8}


def picture(rng, size):
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([128 + 90 * np.sin(6 * xx + 2 * c) * np.cos(4 * yy - c) for c in range(3)])
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).round().astype(np.float32)


def blob(rng, size):
    yy, xx = np.mgrid[0:size, 0:size]
    m = np.zeros((size, size), np.float32)
    for _ in range(4):
        cy, cx = rng.uniform(0.25, 0.75, 2) * size
        r = rng.uniform(0.06, 0.16) * size
        m[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    return m


def main():
    rng = np.random.default_rng(20180601)
    s = 64
    images = np.stack([picture(rng, s), picture(rng, s)])
    rect = np.zeros((s, s), np.float32)
    rect[16:40, 20:44] = 1
    masks = np.stack([rect, blob(rng, s)])[:, None]
    res = generator(images, masks)
    probes = {f"probe/{n}": weights_for(l)[0].reshape(-1)[:16] for l in STAGE1[:1] + MERGE[2:3] for n in [scope(l[0], l[6]) + "/kernel"]}
    save_file({"image": images, "mask": masks, **{k: v.astype(np.float32) for k, v in res.items()}, **probes},
              f"{OUT}/ca_64.safetensors")
    print("64:", {k: float(np.abs(v).mean()) for k, v in res.items()})

    s = 256
    image = picture(rng, s)[None]
    mask = blob(rng, s)[None, None]
    res = generator(image, mask)
    sub = slice(None, None, 4)
    save_file({
        "image_u8": image.astype(np.uint8),
        "mask_u8": mask.astype(np.uint8),
        "output_u8_sub4": res["output_u8"][:, :, sub, sub].astype(np.float32),
        "stage2_sub4": res["stage2"][:, :, sub, sub].astype(np.float32),
        "stage1_mean": np.array([res["stage1"].mean()], np.float32),
        "stage2_mean": np.array([res["stage2"].mean()], np.float32),
    }, f"{OUT}/ca_256.safetensors")
    print("256: stage2 mean", res["stage2"].mean())


if __name__ == "__main__":
    main()
