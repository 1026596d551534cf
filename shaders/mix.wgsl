// The FIDO mix of an image with its in-filled background under a keep mask, and its
// gradient with respect to the mask. One kernel each instead of a broadcast subtract,
// multiply and add (forward) and a broadcast multiply plus a channel sum (backward): every
// invocation owns one pixel of one sample, loads its keep value once and walks the channels.
//
//   out[b, c, p]  = background[b, c, p] + keep[b, p] · (image[b', c, p] − background[b, c, p])
//   dkeep[b, p]   = Σ_c dy[b, c, p] · (image[b', c, p] − background[b, c, p])
//
// with b' = b when the image has the samples' batch and 0 when it has one image for all.
// The background broadcasts the same way over samples, and may also be one value per
// channel (the Mean in-filler): its strides say which.

override WG: u32 = 64u;

struct MixParams {
    items: u32,          // samples × pixels
    pixels: u32,         // per plane
    channels: u32,
    image_stride: u32,   // 0 for one image shared by every sample, else channels × pixels
    background_sample_stride: u32,
    background_channel_stride: u32,
    background_pixel_stride: u32,  // 0 for one value per channel, else 1
}

@group(0) @binding(0) var<uniform> mp: MixParams;
@group(0) @binding(1) var<storage, read> keep: array<f32>;
@group(0) @binding(2) var<storage, read> image: array<f32>;
@group(0) @binding(3) var<storage, read> background: array<f32>;
@group(0) @binding(4) var<storage, read_write> mixed: array<f32>;
@group(0) @binding(5) var<storage, read> mixed_grad: array<f32>;
@group(0) @binding(6) var<storage, read_write> keep_grad: array<f32>;

// Channel 0 of invocation i's pixel (sample b, pixel p) in the output (and dy), the image
// and the background.
struct MixSite {
    out: u32,
    image: u32,
    background: u32,
}

fn mix_site(i: u32) -> MixSite {
    let b = i / mp.pixels;
    let p = i - b * mp.pixels;
    return MixSite(
        b * mp.channels * mp.pixels + p,
        b * mp.image_stride + p,
        b * mp.background_sample_stride + p * mp.background_pixel_stride,
    );
}

@compute @workgroup_size(WG)
fn mix(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= mp.items {
        return;
    }
    let k = keep[i];
    let at = mix_site(i);
    for (var c = 0u; c < mp.channels; c++) {
        let bg = background[at.background + c * mp.background_channel_stride];
        mixed[at.out + c * mp.pixels] = fma(k, image[at.image + c * mp.pixels] - bg, bg);
    }
}

@compute @workgroup_size(WG)
fn mix_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= mp.items {
        return;
    }
    let at = mix_site(i);
    var sum = 0.0;
    for (var c = 0u; c < mp.channels; c++) {
        let bg = background[at.background + c * mp.background_channel_stride];
        sum = fma(mixed_grad[at.out + c * mp.pixels], image[at.image + c * mp.pixels] - bg, sum);
    }
    keep_grad[i] = sum;
}
