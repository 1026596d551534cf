// Contextual attention (DeepFill v1) pieces that no general op covers: patch extraction,
// patch normalisation, the patch-validity mask, the diagonal score fuse and the masked
// softmax. Scores and pasting are ordinary (transposed) convolutions done elsewhere.
//
// Layouts: feature maps are the [C, H, W] planes of one sample; patches are
// [L, C, K, K] with L = out_h·out_w in row-major order; scores are [L, P] with P the
// row-major position of the score map (the output of a convolution with L channels).

override WG: u32 = 64u;

struct Params {
    total: u32,     // invocations
    channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,     // patch grid (or score-map) height
    out_w: u32,
    ksize: u32,
    stride: u32,
    pad: u32,       // zero padding before (top/left); the rest is implied by the grid
    mode: u32,      // fuse: 0 = row-major neighbours, 1 = column-major neighbours
    scale: f32,     // softmax temperature multiplier
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> validity: array<f32>;   // masked_softmax: mm
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// out[l, c, u, v] = src[c, oy·stride + u − pad, ox·stride + v − pad], zero outside.
@compute @workgroup_size(WG)
fn extract_patches(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total {
        return;
    }
    let k = p.ksize;
    let v = id % k;
    let u = (id / k) % k;
    let c = (id / (k * k)) % p.channels;
    let l = id / (k * k * p.channels);
    let ox = l % p.out_w;
    let oy = l / p.out_w;
    let y = i32(oy * p.stride + u) - i32(p.pad);
    let x = i32(ox * p.stride + v) - i32(p.pad);
    var value = 0.0;
    if y >= 0 && x >= 0 && y < i32(p.in_h) && x < i32(p.in_w) {
        value = src[(c * p.in_h + u32(y)) * p.in_w + u32(x)];
    }
    out[id] = value;
}

// Each of the `total` patches of `channels` values (C·K·K, passed flattened) divided by
// max(‖patch‖₂, 1e-4).
@compute @workgroup_size(WG)
fn normalize_patches(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let l = linear_id(gid, nwg);
    if l >= p.total {
        return;
    }
    let n = p.channels;
    let base = l * n;
    var sum = 0.0;
    for (var i = 0u; i < n; i++) {
        let value = src[base + i];
        sum += value * value;
    }
    let inv = 1.0 / max(sqrt(sum), 1e-4);
    for (var i = 0u; i < n; i++) {
        out[base + i] = src[base + i] * inv;
    }
}

// 1 where the K×K window (zero padded by `pad`) of the single-channel mask at patch l is all
// zero, i.e. the patch lies wholly in the known region; 0 otherwise.
@compute @workgroup_size(WG)
fn patch_validity(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let l = linear_id(gid, nwg);
    if l >= p.total {
        return;
    }
    let ox = l % p.out_w;
    let oy = l / p.out_w;
    var sum = 0.0;
    for (var u = 0u; u < p.ksize; u++) {
        for (var v = 0u; v < p.ksize; v++) {
            let y = i32(oy * p.stride + u) - i32(p.pad);
            let x = i32(ox * p.stride + v) - i32(p.pad);
            if y >= 0 && x >= 0 && y < i32(p.in_h) && x < i32(p.in_w) {
                sum += src[u32(y) * p.in_w + u32(x)];
            }
        }
    }
    out[l] = select(0.0, 1.0, sum == 0.0);
}

// Flattened index `n` of an out_h×out_w grid moved by `d` steps along the traversal order
// (row-major or column-major); -1 when it leaves the grid.
fn step_index(n: u32, d: i32) -> i32 {
    let count = i32(p.out_h * p.out_w);
    if p.mode == 0u {
        let m = i32(n) + d;
        return select(-1, m, m >= 0 && m < count);
    }
    let row = n / p.out_w;
    let col = n % p.out_w;
    let rank = i32(col * p.out_h + row) + d;
    if rank < 0 || rank >= count {
        return -1;
    }
    let r = u32(rank) % p.out_h;
    let c = u32(rank) / p.out_h;
    return i32(r * p.out_w + c);
}

// out[l, q] = Σ_{d=−1..1} src[l + d, q + d] along the chosen order; positions q and patches
// l share the same grid (foreground = background).
@compute @workgroup_size(WG)
fn fuse_diagonal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = linear_id(gid, nwg);
    if id >= p.total {
        return;
    }
    let positions = p.out_h * p.out_w;
    let q = id % positions;
    let l = id / positions;
    var sum = 0.0;
    for (var d = -1; d <= 1; d++) {
        let ln = step_index(l, d);
        let qn = step_index(q, d);
        if ln >= 0 && qn >= 0 {
            sum += src[u32(ln) * positions + u32(qn)];
        }
    }
    out[id] = sum;
}

// For each position q: s_l = scale · S[l, q] · mm[l], A[l, q] = softmax_l(s) · mm[l].
// `channels` holds L, `out_h·out_w` the positions; `validity` is mm.
@compute @workgroup_size(WG)
fn masked_softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = linear_id(gid, nwg);
    let positions = p.out_h * p.out_w;
    if q >= positions {
        return;
    }
    let patches = p.channels;
    var peak = -3.0e38;
    for (var l = 0u; l < patches; l++) {
        peak = max(peak, p.scale * src[l * positions + q] * validity[l]);
    }
    var total = 0.0;
    for (var l = 0u; l < patches; l++) {
        total += exp(p.scale * src[l * positions + q] * validity[l] - peak);
    }
    let inv = 1.0 / total;
    for (var l = 0u; l < patches; l++) {
        out[l * positions + q] = exp(p.scale * src[l * positions + q] * validity[l] - peak) * inv * validity[l];
    }
}
