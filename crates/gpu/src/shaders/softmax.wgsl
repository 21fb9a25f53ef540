// Softmax along one axis: x seen as (outer, len, inner), one thread per (outer, inner) line of
// `len` values `inner` apart. As sadtalker_ops::softmax_last_dim: the maximum, exp(x - max),
// their sum (f32 here, f64 there), then each times 1 / sum. The grid is 2-D so that more than
// 65535 workgroups' worth of lines fits one dispatch.

struct Params { n: u32, row: u32, len: u32, inner: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let line = gid.y * p.row + gid.x;
    if (line >= p.n) {
        return;
    }
    let base = (line / p.inner) * p.len * p.inner + line % p.inner;
    var m = x[base];
    for (var j = 1u; j < p.len; j++) {
        m = max(m, x[base + j * p.inner]);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.len; j++) {
        let e = exp(x[base + j * p.inner] - m);
        y[base + j * p.inner] = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < p.len; j++) {
        y[base + j * p.inner] *= inv;
    }
}
