// `x.narrow(dim, start, len)` as a gather: x seen as (outer, dim_in, inner), y as
// (outer, len, inner); element (o, j, i) of y is element (o, start + j, i) of x. For slices
// whose rows are too short for buffer copies to pay (the mapping network's time axis).
// The grid is 2-D so that more than 65535 workgroups' worth of elements fits one dispatch.

struct Params { n: u32, row: u32, inner: u32, len: u32, dim_in: u32, start: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i < p.n) {
        let k = i % p.inner;
        let rest = i / p.inner;
        let j = rest % p.len;
        let o = rest / p.len;
        y[i] = x[(o * p.dim_in + p.start + j) * p.inner + k];
    }
}
