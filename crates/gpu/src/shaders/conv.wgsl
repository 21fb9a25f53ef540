// Convolution (1-D, 2-D, 3-D: lower ranks have unit depth/height) as an implicit GEMM.
//
// Per group g:  Y[co, col] = sum_k W[co, k] * X_col[k, col] (+ bias[co]),
// with k = (ci, kz, ky, kx) over cin/groups x kernel volume, and col = (n, oz, oy, ox) over
// batch x output positions. X_col is never materialised: each workgroup gathers its BK x BN
// slice of it straight from the input into shared memory, zero outside the padded input
// (or, with p.reflect, the input mirrored about its edges: `padding_mode='reflect'`).
//
// Tiles: a 16x16 workgroup computes a BM x BN = 64 x 64 block of Y, each thread 4 x 4 of it,
// stepping through K by BK = 16. The loads are laid out so each thread's input column is fixed
// for the whole K loop: its (n, oz, oy, ox) is decoded once.

struct Params {
    cin_g: u32, m: u32, k: u32, ncols: u32,
    cin: u32, cout: u32, in_d: u32, in_h: u32,
    in_w: u32, k_d: u32, k_h: u32, k_w: u32,
    s_d: u32, s_h: u32, s_w: u32, p_d: u32,
    p_h: u32, p_w: u32, d_d: u32, d_h: u32,
    d_w: u32, out_d: u32, out_h: u32, out_w: u32,
    has_bias: u32, groups: u32, grid_x: u32, reflect: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// [BK][BM] weights and [BK][BN] gathered inputs.
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// PyTorch's reflection index (-1 -> 1, n -> n - 2; the edge is not repeated), for padding
// smaller than the axis (checked on the host).
fn reflect(i: i32, n: u32) -> i32 {
    let last = i32(n) - 1;
    var j = abs(i);
    if (j > last) {
        j = 2 * last - j;
    }
    return j;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = lid.y * 16u + lid.x;
    // z enumerates (column fold, group): one grid dimension holds at most 65535 column tiles,
    // fewer than a 512^2 batch needs, so the column tiles past grid_x fold into z.
    let g = wid.z % p.groups;
    let col0 = ((wid.z / p.groups) * p.grid_x + wid.x) * BN;
    // Uniform per workgroup (the last fold's spare tiles), so no barrier is skipped by some threads only.
    if (col0 >= p.ncols) {
        return;
    }
    let row0 = wid.y * BM;
    let plane = p.in_h * p.in_w;
    let in_vol = p.in_d * plane;
    let k_hw = p.k_h * p.k_w;
    let k_vol = p.k_d * k_hw;

    // Input loader: column t % BN, K rows (t / BN) * 4 .. + 4 of each tile.
    let lc = t % BN;
    let lk = (t / BN) * 4u;
    let col = col0 + lc;
    let col_ok = col < p.ncols;
    var rem = col;
    let ox = rem % p.out_w;
    rem = rem / p.out_w;
    let oy = rem % p.out_h;
    rem = rem / p.out_h;
    let oz = rem % p.out_d;
    let nb = rem / p.out_d;
    let iz0 = i32(oz * p.s_d) - i32(p.p_d);
    let iy0 = i32(oy * p.s_h) - i32(p.p_h);
    let ix0 = i32(ox * p.s_w) - i32(p.p_w);
    let x_base = (nb * p.cin + g * p.cin_g) * in_vol;

    // Weight loader: row t / 4, K columns (t % 4) * 4 .. + 4 of each tile.
    let ar = t / 4u;
    let ak = (t % 4u) * 4u;
    let arow = row0 + ar;
    let row_ok = arow < p.m;
    let w_base = (g * p.m + arow) * p.k;

    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var i = 0u; i < 4u; i++) {
            let kk = k0 + ak + i;
            var v = 0.0;
            if (row_ok && kk < p.k) {
                v = w[w_base + kk];
            }
            a_tile[(ak + i) * BM + ar] = v;
        }
        for (var i = 0u; i < 4u; i++) {
            let kk = k0 + lk + i;
            var v = 0.0;
            if (col_ok && kk < p.k) {
                let ci = kk / k_vol;
                let r = kk % k_vol;
                let kz = r / k_hw;
                let r2 = r % k_hw;
                let ky = r2 / p.k_w;
                let kx = r2 % p.k_w;
                var iz = iz0 + i32(kz * p.d_d);
                var iy = iy0 + i32(ky * p.d_h);
                var ix = ix0 + i32(kx * p.d_w);
                if (p.reflect != 0u) {
                    iz = reflect(iz, p.in_d);
                    iy = reflect(iy, p.in_h);
                    ix = reflect(ix, p.in_w);
                }
                if (iz >= 0 && iz < i32(p.in_d) && iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                    v = x[x_base + ci * in_vol + u32(iz) * plane + u32(iy) * p.in_w + u32(ix)];
                }
            }
            b_tile[(lk + i) * BN + lc] = v;
        }
        workgroupBarrier();
        // Summed per K tile, then into the total: the rounding error grows with BK + K / BK
        // terms instead of K (a 256-channel 3x3 conv has K = 2304).
        var part: array<f32, 16>;
        for (var i = 0u; i < 16u; i++) {
            part[i] = 0.0;
        }
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = a_tile[kk * BM + lid.y * 4u + i];
                b[i] = b_tile[kk * BN + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    part[i * 4u + j] = fma(a[i], b[j], part[i * 4u + j]);
                }
            }
        }
        for (var i = 0u; i < 16u; i++) {
            acc[i] += part[i];
        }
        workgroupBarrier();
    }

    let out_vol = p.out_d * p.out_h * p.out_w;
    for (var j = 0u; j < 4u; j++) {
        let c = col0 + lid.x * 4u + j;
        if (c >= p.ncols) {
            continue;
        }
        let n = c / out_vol;
        let s = c % out_vol;
        for (var i = 0u; i < 4u; i++) {
            let row = row0 + lid.y * 4u + i;
            if (row >= p.m) {
                continue;
            }
            let co = g * p.m + row;
            var v = acc[i * 4u + j];
            if (p.has_bias != 0u) {
                v += bias[co];
            }
            y[(n * p.cout + co) * out_vol + s] = v;
        }
    }
}
