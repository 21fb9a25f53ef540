// F.avg_pool{2,3}d without padding: each output the sum of its window (z, then y, then x, from
// zero) over the window's size, as sadtalker_ops's pooling forms it, so the values are the same.
// 2-D inputs come as depth 1.

struct Params {
    n: u32, row: u32, id: u32, ih: u32,
    iw: u32, od: u32, oh: u32, ow: u32,
    kd: u32, kh: u32, kw: u32, sd: u32,
    sh: u32, sw: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

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
    let base = plane * p.id * p.ih * p.iw;
    var sum = 0.0;
    for (var z = 0u; z < p.kd; z++) {
        for (var yy = 0u; yy < p.kh; yy++) {
            let r = base + ((oz * p.sd + z) * p.ih + oy * p.sh + yy) * p.iw + ox * p.sw;
            for (var xx = 0u; xx < p.kw; xx++) {
                sum += x[r + xx];
            }
        }
    }
    y[i] = sum / f32(p.kd * p.kh * p.kw);
}
