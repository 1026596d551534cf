// Peak probes for benchmark reports: an FMA-bound loop and a bandwidth-bound copy.

const WG: u32 = 256u;

struct Params {
    n: u32,          // elements (fma) or vec4s (copy)
    iterations: u32, // FMA loop trips per invocation
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

// Eight independent vec4 chains: enough parallel work to fill SIMD lanes and pipelines.
@compute @workgroup_size(WG)
fn fma_loop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.n { return; }
    let seed = f32(i % 7u) * 0.001;
    var a0 = vec4<f32>(seed); var a1 = a0 + 0.1; var a2 = a0 + 0.2; var a3 = a0 + 0.3;
    var a4 = a0 + 0.4; var a5 = a0 + 0.5; var a6 = a0 + 0.6; var a7 = a0 + 0.7;
    let m = vec4<f32>(0.999);
    let c = vec4<f32>(0.001);
    for (var k = 0u; k < p.iterations; k++) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    }
    dst[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.n { return; }
    dst[i] = src[i];
}
