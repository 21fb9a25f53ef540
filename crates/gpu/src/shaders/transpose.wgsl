// The last two axes swapped: x seen as (outer, a, b), y as (outer, b, a); element (o, j, i) of
// y is element (o, i, j) of x. The grid is 2-D so that more than 65535 workgroups' worth of
// elements fits one dispatch.

struct Params { n: u32, row: u32, a: u32, b: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.y * p.row + gid.x;
    if (k < p.n) {
        let i = k % p.a;
        let rest = k / p.a;
        let j = rest % p.b;
        let o = rest / p.b;
        y[k] = x[(o * p.a + i) * p.b + j];
    }
}
