// Drawing engine tensors on screen: an image, a map, or the map over the image, read
// straight from the tensors' storage buffers. A fullscreen triangle covers the target; the
// fragment shader keeps the fragments inside `rect` and maps them to the tensor's pixels,
// so a panel needs no vertex buffer and no texture upload.

struct Panel {
    // x, y, width, height of the panel in target pixels.
    rect: vec4<f32>,
    // Image width, height, element offset of its first channel, channel stride (elements).
    image_dims: vec4<u32>,
    // Map width, height, element offset; w: the colour map (0 diverging, 1 ink).
    map_dims: vec4<u32>,
    // De-normalisation: unit = (value · spread + mean) / range per channel (the std), mean.w = range.
    mean: vec4<f32>,
    spread: vec4<f32>,
    // Ink colour (rgb) and the opacity of the whole draw (w).
    ink: vec4<f32>,
    // x: draw the image, y: draw the map, z: the target stores sRGB (encode to linear).
    flags: vec4<u32>,
}

@group(0) @binding(0) var<uniform> panel: Panel;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read> map: array<f32>;

@vertex
fn vs_fullscreen(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    return vec4<f32>(x, y, 0.0, 1.0);
}

// The report's colour map (explain::report::diverging): blue through white to red.
fn diverging(v: f32) -> vec3<f32> {
    let t = clamp(v, 0.0, 1.0);
    let blue = vec3<f32>(59.0, 76.0, 192.0) / 255.0;
    let white = vec3<f32>(242.0, 242.0, 242.0) / 255.0;
    let red = vec3<f32>(180.0, 4.0, 38.0) / 255.0;
    if t < 0.5 {
        return mix(blue, white, t * 2.0);
    }
    return mix(white, red, (t - 0.5) * 2.0);
}

fn to_target(c: vec3<f32>) -> vec3<f32> {
    if panel.flags.z == 0u {
        return c;
    }
    // The target encodes on store, so hand it linear values.
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

// Nearest texel of a w×h grid for the panel-relative position p in [0, 1).
fn texel(p: vec2<f32>, w: u32, h: u32) -> u32 {
    let x = min(u32(p.x * f32(w)), w - 1u);
    let y = min(u32(p.y * f32(h)), h - 1u);
    return y * w + x;
}

@fragment
fn fs_panel(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let p = (frag.xy - panel.rect.xy) / panel.rect.zw;
    if any(p < vec2<f32>(0.0)) || any(p >= vec2<f32>(1.0)) {
        discard;
    }
    var rgb = vec3<f32>(0.0);
    var alpha = panel.ink.w;
    if panel.flags.x != 0u {
        let d = panel.image_dims;
        let at = d.z + texel(p, d.x, d.y);
        let value = vec3<f32>(image[at], image[at + d.w], image[at + 2u * d.w]);
        rgb = clamp((value * panel.spread.xyz + panel.mean.xyz) / panel.mean.w, vec3<f32>(0.0), vec3<f32>(1.0));
    }
    if panel.flags.y != 0u {
        let d = panel.map_dims;
        let v = map[d.z + texel(p, d.x, d.y)];
        if d.w == 1u {
            // Ink: the map is coverage, as of text or a mask.
            alpha = alpha * clamp(v, 0.0, 1.0);
            rgb = panel.ink.xyz;
        } else if panel.flags.x != 0u {
            // The report's overlay (explain::report::overlay): the picture dimmed where the
            // map is low, then 40% of the colour map.
            let light = 0.35 + 0.65 * clamp(v, 0.0, 1.0);
            rgb = rgb * light * 0.6 + diverging(v) * 0.4;
        } else {
            rgb = diverging(v);
        }
    }
    return vec4<f32>(to_target(rgb), alpha);
}
