// Peak probes for benchmark reports: an FMA-bound loop and a bandwidth-bound copy.
//
// The FMA loop runs CHAINS independent vec4 chains per invocation. One chain measures the
// FMA latency, not its throughput; too many spill out of the 16 AVX2 registers a lane's
// values share on lavapipe. The benchmark runs every chain count and reports the best.
// The copy moves PER_INVOCATION vec4s per invocation, either contiguous (a block) or WG
// apart (neighbouring lanes at neighbouring addresses); the benchmark reports the best.

const WG: u32 = 256u;
// Independent vec4 chains, 1..=16.
override CHAINS: u32 = 4u;
// vec4s one copy invocation moves, 1..=8, and whether they are WG apart (1) or adjacent (0).
override PER_INVOCATION: u32 = 1u;
override STRIDED: u32 = 0u;

struct Params {
    n: u32,          // invocations (fma) or vec4s (copy)
    iterations: u32, // FMA loop trips per invocation
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn fma_loop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.n { return; }
    let seed = f32(i % 7u) * 0.001;
    var a0 = vec4<f32>(seed); var a1 = a0 + 0.1; var a2 = a0 + 0.2; var a3 = a0 + 0.3;
    var a4 = a0 + 0.4; var a5 = a0 + 0.5; var a6 = a0 + 0.6; var a7 = a0 + 0.7;
    var a8 = a0 + 0.8; var a9 = a0 + 0.9; var a10 = a0 + 1.0; var a11 = a0 + 1.1;
    var a12 = a0 + 1.2; var a13 = a0 + 1.3; var a14 = a0 + 1.4; var a15 = a0 + 1.5;
    let m = vec4<f32>(0.999);
    let c = vec4<f32>(0.001);
    // Chains past CHAINS are never touched, so the compiler drops them.
    for (var k = 0u; k < p.iterations; k++) {
        a0 = fma(a0, m, c);
        if CHAINS > 1u { a1 = fma(a1, m, c); }
        if CHAINS > 2u { a2 = fma(a2, m, c); }
        if CHAINS > 3u { a3 = fma(a3, m, c); }
        if CHAINS > 4u { a4 = fma(a4, m, c); }
        if CHAINS > 5u { a5 = fma(a5, m, c); }
        if CHAINS > 6u { a6 = fma(a6, m, c); }
        if CHAINS > 7u { a7 = fma(a7, m, c); }
        if CHAINS > 8u { a8 = fma(a8, m, c); }
        if CHAINS > 9u { a9 = fma(a9, m, c); }
        if CHAINS > 10u { a10 = fma(a10, m, c); }
        if CHAINS > 11u { a11 = fma(a11, m, c); }
        if CHAINS > 12u { a12 = fma(a12, m, c); }
        if CHAINS > 13u { a13 = fma(a13, m, c); }
        if CHAINS > 14u { a14 = fma(a14, m, c); }
        if CHAINS > 15u { a15 = fma(a15, m, c); }
    }
    var total = a0;
    if CHAINS > 1u { total += a1; }
    if CHAINS > 2u { total += a2; }
    if CHAINS > 3u { total += a3; }
    if CHAINS > 4u { total += a4; }
    if CHAINS > 5u { total += a5; }
    if CHAINS > 6u { total += a6; }
    if CHAINS > 7u { total += a7; }
    if CHAINS > 8u { total += a8; }
    if CHAINS > 9u { total += a9; }
    if CHAINS > 10u { total += a10; }
    if CHAINS > 11u { total += a11; }
    if CHAINS > 12u { total += a12; }
    if CHAINS > 13u { total += a13; }
    if CHAINS > 14u { total += a14; }
    if CHAINS > 15u { total += a15; }
    dst[i] = total;
}

@compute @workgroup_size(WG)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lane = gid.x % WG;
    let group = gid.x / WG + gid.y * nwg.x;
    var first = group * WG * PER_INVOCATION + lane * PER_INVOCATION;
    var step = 1u;
    if STRIDED != 0u {
        first = group * WG * PER_INVOCATION + lane;
        step = WG;
    }
    for (var j = 0u; j < PER_INVOCATION; j++) {
        let k = first + j * step;
        if k < p.n {
            dst[k] = src[k];
        }
    }
}
