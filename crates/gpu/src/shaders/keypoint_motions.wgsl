// create_sparse_motions and create_heatmap_representations of the dense motion network, as
// sadtalker_ops::motion::keypoint_motions: one thread per (frame, keypoint or background,
// voxel) writes the voxel's sampling point and heatmap value. `table` holds the grid's axes
// (x: w values, y: h, z: d; computed on the host, so the points are the CPU's) and then
// each frame's keypoint pairs (driving x, y, z, source x, y, z).

struct Params {
    n: u32, row: u32, voxels: u32, k1: u32,
    w: u32, h: u32, d: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> sparse: array<f32>;
@group(0) @binding(3) var<storage, read_write> heatmap: array<f32>;

// kp2gaussian: exp(-0.5 * |g - mean|^2 / 0.01).
fn gaussian(g: vec3<f32>, mean: vec3<f32>) -> f32 {
    let t = g - mean;
    let s = t.x * t.x + t.y * t.y + t.z * t.z;
    return exp(-0.5 * s / 0.01);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let r = i / p.voxels;
    let v = i % p.voxels;
    let k = r % p.k1;
    let g = vec3<f32>(table[v % p.w], table[p.w + (v / p.w) % p.h], table[p.w + p.h + v / (p.w * p.h)]);
    if (k == 0u) {
        sparse[i * 3u] = g.x;
        sparse[i * 3u + 1u] = g.y;
        sparse[i * 3u + 2u] = g.z;
        heatmap[i] = 0.0;
        return;
    }
    let o = p.w + p.h + p.d + ((r / p.k1) * (p.k1 - 1u) + k - 1u) * 6u;
    let dr = vec3<f32>(table[o], table[o + 1u], table[o + 2u]);
    let sr = vec3<f32>(table[o + 3u], table[o + 4u], table[o + 5u]);
    let m = (g - dr) + sr;
    sparse[i * 3u] = m.x;
    sparse[i * 3u + 1u] = m.y;
    sparse[i * 3u + 2u] = m.z;
    heatmap[i] = gaussian(g, dr) - gaussian(g, sr);
}
