// `F.pad(x, (left, right, top, bottom))` with zeros, as a gather: x seen as (outer, h, w), y as
// (outer, oh, ow); element (o, r, c) of y is element (o, r - top, c - left) of x, or zero
// outside it. The grid is 2-D so that more than 65535 workgroups' worth of elements fits one
// dispatch.

struct Params { n: u32, row: u32, h: u32, w: u32, top: u32, left: u32, oh: u32, ow: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.y * p.row + gid.x;
    if (k < p.n) {
        let c = i32(k % p.ow) - i32(p.left);
        let rest = k / p.ow;
        let r = i32(rest % p.oh) - i32(p.top);
        let o = rest / p.oh;
        var v = 0.0;
        if (r >= 0 && r < i32(p.h) && c >= 0 && c < i32(p.w)) {
            v = x[(o * p.h + u32(r)) * p.w + u32(c)];
        }
        y[k] = v;
    }
}
