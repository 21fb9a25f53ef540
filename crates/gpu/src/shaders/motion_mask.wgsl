// The end of DenseMotionNetwork.forward, as sadtalker_ops::motion::motion_mask: one thread per
// (frame, voxel) takes the softmax of the logits over the keypoints (max, exp, sum, divide, in
// keypoint order) and sums the sparse motions weighted by it, weights below 1e-3 zeroed.

struct Params {
    n: u32, row: u32, voxels: u32, k1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> sparse: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> deformation: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let b = i / p.voxels;
    let base = b * p.k1 * p.voxels + i % p.voxels;
    var mx = logits[base];
    for (var k = 1u; k < p.k1; k++) {
        mx = max(mx, logits[base + k * p.voxels]);
    }
    var sum = 0.0;
    for (var k = 0u; k < p.k1; k++) {
        let e = exp(logits[base + k * p.voxels] - mx);
        mask[base + k * p.voxels] = e;
        sum += e;
    }
    var acc = vec3<f32>(0.0);
    for (var k = 0u; k < p.k1; k++) {
        let j = base + k * p.voxels;
        let m = mask[j] / sum;
        mask[j] = m;
        let w = select(m, 0.0, m < 1e-3);
        acc += vec3<f32>(sparse[j * 3u], sparse[j * 3u + 1u], sparse[j * 3u + 2u]) * w;
    }
    deformation[i * 3u] = acc.x;
    deformation[i * 3u + 1u] = acc.y;
    deformation[i * 3u + 2u] = acc.z;
}
