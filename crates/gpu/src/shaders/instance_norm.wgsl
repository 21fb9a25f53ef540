// Instance and group norm: one workgroup per (n, group) unit of `plane` values (a group is
// c / groups whole channels of `hw` values; instance norm has one channel per group). Mean,
// then the biased variance around it (two passes, each a per-thread strided sum then a tree in
// shared memory), then y = fma(x, a, beta) with a = invstd * weight[c], beta = fma(-mean, a,
// bias[c]) as sadtalker_ops forms them, and with `modulate` then y * (1 + γ) + β, γ and β the two halves of
// `gb` (N, 2C, ...), as sadtalker_ops::instance_norm_modulate. The CPU accumulates in f64; WGSL has no f64, and the tree's
// pairwise sums keep the f32 error near 1e-7 relative for the planes the renderer has.

struct Params {
    plane: u32, c: u32, planes: u32, row: u32,
    eps: f32, has_w: u32, has_b: u32, modulate: u32,
    groups: u32, hw: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> gb: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u;
var<workgroup> part: array<f32, 256>;

fn reduce(t: u32, v: f32) -> f32 {
    part[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            part[t] += part[t + s];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let k = wid.y * p.row + wid.x;
    // Uniform per workgroup, so the barriers below are reached by all threads or none.
    if (k >= p.planes) {
        return;
    }
    let t = lid.x;
    let base = k * p.plane;
    let n = f32(p.plane);
    var s = 0.0;
    for (var i = t; i < p.plane; i += WG) {
        s += x[base + i];
    }
    let mean = reduce(t, s) / n;
    var q = 0.0;
    for (var i = t; i < p.plane; i += WG) {
        let d = x[base + i] - mean;
        q = fma(d, d, q);
    }
    let variance = reduce(t, q) / n;
    let invstd = 1.0 / sqrt(variance + p.eps);
    // The unit's first channel; value i of the unit is in channel c0 + i / hw.
    let c0 = (k % p.groups) * (p.c / p.groups);
    if (p.modulate != 0u) {
        // Instance norm only (checked on the host): unit k = (n, c), γ is plane (n, c) of gb's
        // 2C, β plane (n, C + c).
        let ab = affine(c0, invstd, mean);
        let g0 = ((k / p.c) * 2u * p.c + c0) * p.plane;
        let b0 = g0 + p.c * p.plane;
        for (var i = t; i < p.plane; i += WG) {
            y[base + i] = fma(x[base + i], ab.x, ab.y) * (gb[g0 + i] + 1.0) + gb[b0 + i];
        }
    } else {
        for (var i = t; i < p.plane; i += WG) {
            let ab = affine(c0 + i / p.hw, invstd, mean);
            y[base + i] = fma(x[base + i], ab.x, ab.y);
        }
    }
}

// Channel ci's scale a and shift beta, as sadtalker_ops forms them.
fn affine(ci: u32, invstd: f32, mean: f32) -> vec2<f32> {
    var a = invstd;
    if (p.has_w != 0u) {
        a *= weight[ci];
    }
    var b = 0.0;
    if (p.has_b != 0u) {
        b = bias[ci];
    }
    return vec2<f32>(a, fma(-mean, a, b));
}
