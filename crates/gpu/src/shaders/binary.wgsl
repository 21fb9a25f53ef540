// Two-input element-wise maps of tensors of one shape (the host checks them), by p.op (the
// host's `Binary` codes): 0: y = a + b; 1: y = a * b.

struct Params { n: u32, row: u32, op: u32, _pad0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i < p.n) {
        if (p.op == 0u) {
            y[i] = a[i] + b[i];
        } else {
            y[i] = a[i] * b[i];
        }
    }
}
