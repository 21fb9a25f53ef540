// F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners) of a 5-D input
// (trilinear), as sadtalker_ops::grid_sample: ATen's unnormalisation, corner order (tnw, tne,
// tsw, tse, bnw, bne, bsw, bse) and weights; corners outside the volume weigh zero. One thread
// per output point forms the eight corners once and gathers every channel. An input batch of
// one is shared by every grid (the generator's repeated source volume).

struct Params {
    n: u32, row: u32, points: u32, c: u32,
    d: u32, h: u32, w: u32, align: u32,
    in_batch: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> grid: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// ATen's grid_sampler_unnormalize.
fn unnormalize(coord: f32, size: u32) -> f32 {
    let s = f32(size);
    if (p.align != 0u) {
        return (coord + 1.0) / 2.0 * (s - 1.0);
    }
    return ((coord + 1.0) * s - 1.0) / 2.0;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let bn = i / p.points;
    let pt = i % p.points;
    let gx = unnormalize(grid[i * 3u], p.w);
    let gy = unnormalize(grid[i * 3u + 1u], p.h);
    let gz = unnormalize(grid[i * 3u + 2u], p.d);
    let x0 = floor(gx);
    let y0 = floor(gy);
    let z0 = floor(gz);
    // Distances to the far (index 0) and near (index 1) corner along each axis.
    let wx = array<f32, 2>((x0 + 1.0) - gx, gx - x0);
    let wy = array<f32, 2>((y0 + 1.0) - gy, gy - y0);
    let wz = array<f32, 2>((z0 + 1.0) - gz, gz - z0);
    var offs: array<u32, 8>;
    var wts: array<f32, 8>;
    for (var k = 0u; k < 8u; k++) {
        let bz = k >> 2u;
        let by = (k >> 1u) & 1u;
        let bx = k & 1u;
        // Bounds in float, so that far-out coordinates never reach an integer conversion.
        let zz = z0 + f32(bz);
        let yy = y0 + f32(by);
        let xx = x0 + f32(bx);
        let inside = zz >= 0.0 && zz < f32(p.d) && yy >= 0.0 && yy < f32(p.h) && xx >= 0.0 && xx < f32(p.w);
        if (inside) {
            offs[k] = (u32(zz) * p.h + u32(yy)) * p.w + u32(xx);
            wts[k] = wx[bx] * wy[by] * wz[bz];
        } else {
            offs[k] = 0u;
            wts[k] = 0.0;
        }
    }
    let plane = p.d * p.h * p.w;
    let src = select(bn, 0u, p.in_batch == 1u) * p.c * plane;
    for (var ci = 0u; ci < p.c; ci++) {
        let base = src + ci * plane;
        // Summed in ATen's corner order from zero, as the CPU does.
        var acc = 0.0;
        for (var k = 0u; k < 8u; k++) {
            acc += x[base + offs[k]] * wts[k];
        }
        y[(bn * p.c + ci) * p.points + pt] = acc;
    }
}
