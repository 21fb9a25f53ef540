// F.interpolate(mode='nearest') as a gather: the source index along each of the three (padded)
// spatial axes comes from `maps` (z map, then y, then x), which the host computes with
// sadtalker_ops's own index rule, so both sides pick the same pixels.

struct Params { n: u32, row: u32, id: u32, ih: u32, iw: u32, od: u32, oh: u32, ow: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> maps: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let oz = (i / (p.ow * p.oh)) % p.od;
    let plane = i / (p.ow * p.oh * p.od);
    let sz = maps[oz];
    let sy = maps[p.od + oy];
    let sx = maps[p.od + p.oh + ox];
    y[i] = x[((plane * p.id + sz) * p.ih + sy) * p.iw + sx];
}
