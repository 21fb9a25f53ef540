// Element-wise maps of x (N, C, plane...) with a second operand broadcast over it, by p.op (the
// host's `Broadcast` codes):
//   0: y = fma(x, a[c], b[c]), per-channel coefficients: a batch norm folded as
//      sadtalker_ops::batch_norm folds it (whose FMA this is; a Vulkan device may round it as
//      a multiply then an add, an ulp apart);
//   1: y = x * a[n, 0, s], a one-channel map over every channel (the occlusion mask);
//   2: y = x * a[n, c], a scale per sample and channel (StyleGAN2's modulation, demodulation);
//   3: y = x + a[c], a bias per channel;
//   4: y = x + a[n, 0, s], a one-channel map added to every channel (StyleGAN2's noise).

struct Params { n: u32, row: u32, plane: u32, c: u32, op: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let s = i % p.plane;
    let nc = i / p.plane;
    if (p.op == 0u) {
        let ch = nc % p.c;
        y[i] = fma(x[i], a[ch], b[ch]);
    } else if (p.op == 1u) {
        y[i] = x[i] * a[(nc / p.c) * p.plane + s];
    } else if (p.op == 2u) {
        y[i] = x[i] * a[nc];
    } else if (p.op == 3u) {
        y[i] = x[i] + a[nc % p.c];
    } else {
        y[i] = x[i] + a[(nc / p.c) * p.plane + s];
    }
}
