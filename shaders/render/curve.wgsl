// A line strip whose points are a buffer of f32 values (a score per step), drawn inside
// `rect` with the vertical range the values span. Nothing is read back to draw it.

struct Curve {
    rect: vec4<f32>,
    // Points drawn, and the target's size in pixels.
    count: u32,
    target_width: f32,
    target_height: f32,
    srgb: u32,
    colour: vec4<f32>,
}

@group(0) @binding(0) var<uniform> curve: Curve;
@group(0) @binding(1) var<storage, read> values: array<f32>;

struct CurveOut {
    @builtin(position) position: vec4<f32>,
}

@vertex
fn vs_curve(@builtin(vertex_index) i: u32) -> CurveOut {
    // The vertical range is the values' own, found here so that no value is read back.
    var lo = values[0];
    var hi = values[0];
    for (var k = 1u; k < curve.count; k++) {
        lo = min(lo, values[k]);
        hi = max(hi, values[k]);
    }
    let span = max(hi - lo, 1e-6);
    let k = min(i, curve.count - 1u);
    let fx = select(0.5, f32(k) / f32(max(curve.count - 1u, 1u)), curve.count > 1u);
    let fy = (values[k] - lo) / span;
    // 6% margins inside the panel, y up.
    let px = curve.rect.x + curve.rect.z * (0.06 + 0.88 * fx);
    let py = curve.rect.y + curve.rect.w * (0.94 - 0.88 * fy);
    var out: CurveOut;
    out.position = vec4<f32>(px / curve.target_width * 2.0 - 1.0, 1.0 - py / curve.target_height * 2.0, 0.0, 1.0);
    return out;
}

@fragment
fn fs_curve() -> @location(0) vec4<f32> {
    var c = curve.colour.xyz;
    if curve.srgb != 0u {
        let lo = c / 12.92;
        let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
        c = select(hi, lo, c <= vec3<f32>(0.04045));
    }
    return vec4<f32>(c, curve.colour.w);
}
