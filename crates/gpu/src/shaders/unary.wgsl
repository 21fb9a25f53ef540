// One-input element-wise maps, chosen by p.op (the host's `Unary` codes):
//   0: y = x > 0 ? x : x * slope, as sadtalker_ops::leaky_relu (NaN stays NaN: NaN * slope);
//   1: y = 1 / (1 + exp(-x)), as sadtalker_ops::sigmoid forms it;
//   2: y = x * slope (a scalar product, as candle's `affine(s, 0)`);
//   3: y = x > slope ? 1 : 0 (a NaN gives 0).
// The grid is 2-D so that more than 65535 workgroups' worth of elements fits one dispatch.

struct Params { n: u32, row: u32, slope: f32, op: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row + gid.x;
    if (i < p.n) {
        let v = x[i];
        if (p.op == 0u) {
            y[i] = select(v * p.slope, v, v > 0.0);
        } else if (p.op == 1u) {
            y[i] = 1.0 / (1.0 + exp(-v));
        } else if (p.op == 2u) {
            y[i] = v * p.slope;
        } else {
            y[i] = select(0.0, 1.0, v > p.slope);
        }
    }
}
