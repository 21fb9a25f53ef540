// F.max_pool2d(x, kernel, stride, padding) (dilation 1, ceil_mode=False): each output the
// largest value of its window, padding read as minus infinity, a NaN winning (as ATen and
// sadtalker_ops::max_pool2d).

struct Params {
    n: u32, row: u32, ih: u32, iw: u32,
    oh: u32, ow: u32, kh: u32, kw: u32,
    sh: u32, sw: u32, ph: u32, pw: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i >= p.n) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let base = (i / (p.ow * p.oh)) * p.ih * p.iw;
    let y0 = i32(oy * p.sh) - i32(p.ph);
    let x0 = i32(ox * p.sw) - i32(p.pw);
    var m = bitcast<f32>(0xff800000u);
    for (var yy = 0u; yy < p.kh; yy++) {
        let iy = y0 + i32(yy);
        if (iy < 0 || iy >= i32(p.ih)) {
            continue;
        }
        for (var xx = 0u; xx < p.kw; xx++) {
            let ix = x0 + i32(xx);
            if (ix < 0 || ix >= i32(p.iw)) {
                continue;
            }
            let v = x[base + u32(iy) * p.iw + u32(ix)];
            // NaN by its bits: shader compilers may fold `v != v` away (lavapipe does).
            if (v > m || (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
                m = v;
            }
        }
    }
    y[i] = m;
}
