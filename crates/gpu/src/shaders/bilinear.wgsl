// F.interpolate(mode='bilinear') of (N, C, H, W) as a gather with the host's taps
// (sadtalker_ops::BilinearMaps: source rows/columns in `idx`, weights in `wt`, the rows' first
// then the columns'), nesting the width interpolation inside the height one as ATen does.

struct Params { n: u32, row: u32, ih: u32, iw: u32, oh: u32, ow: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> wt: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = (i / (p.ow * p.oh)) * p.ih * p.iw;
    let r0 = plane + idx[2u * oy] * p.iw;
    let r1 = plane + idx[2u * oy + 1u] * p.iw;
    let c = 2u * (p.oh + ox);
    let c0 = idx[c];
    let c1 = idx[c + 1u];
    let w0 = wt[c];
    let w1 = wt[c + 1u];
    let t0 = x[r0 + c0] * w0 + x[r0 + c1] * w1;
    let t1 = x[r1 + c0] * w0 + x[r1 + c1] * w1;
    y[i] = t0 * wt[2u * oy] + t1 * wt[2u * oy + 1u];
}
