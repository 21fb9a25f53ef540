//! conv1d/2d/3d against `sadtalker_ops` on seeded random inputs, max error relative to the
//! largest reference value.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{rand_tensor, rel_err, up};
use sadtalker_gpu::{ConvParams, GpuError};

const TOL: f32 = 1e-5;

fn check<const N: usize>(x: &[usize], w: &[usize], bias: bool, p: ConvParams<N>) {
    let Some(dev) = common::device() else { return };
    let seed = (x.iter().chain(w).sum::<usize>() * 31 + N) as u64;
    let xh = rand_tensor(x, seed);
    let wh = rand_tensor(w, seed + 1);
    let bh = bias.then(|| rand_tensor(&w[..1], seed + 2));
    let want = sadtalker_ops::conv(&xh, &wh, bh.as_ref(), p).unwrap();
    let bd = bh.as_ref().map(|b| up(dev, b));
    let got = sadtalker_gpu::conv(&up(dev, &xh), &up(dev, &wh), bd.as_ref(), p).unwrap();
    let e = rel_err(&got, &want);
    assert!(e <= TOL, "x {x:?} w {w:?} {p:?}: relative error {e:e}");
}

#[test]
fn conv2d_3x3_padded_with_bias_batch_2() {
    check(&[2, 8, 17, 19], &[16, 8, 3, 3], true, ConvParams::<2>::padding(1));
}

#[test]
fn conv2d_stride_2() {
    check(
        &[1, 6, 20, 22],
        &[10, 6, 3, 3],
        true,
        ConvParams::<2>::padding(1).with_stride(2),
    );
}

#[test]
fn conv2d_groups_2() {
    check(
        &[1, 8, 12, 12],
        &[12, 4, 3, 3],
        false,
        ConvParams::<2>::padding(1).with_groups(2),
    );
}

#[test]
fn conv2d_depthwise() {
    check(
        &[1, 8, 10, 10],
        &[8, 1, 3, 3],
        true,
        ConvParams::<2>::default().with_groups(8),
    );
}

#[test]
fn conv2d_1x1_more_rows_than_a_tile() {
    // 65 output channels and K = 70: two row tiles, a partial K tile.
    check(&[2, 70, 9, 11], &[65, 70, 1, 1], true, ConvParams::<2>::default());
}

#[test]
fn conv2d_dilated() {
    check(
        &[1, 3, 15, 15],
        &[5, 3, 3, 3],
        true,
        ConvParams::<2>::padding(2).with_dilation(2),
    );
}

#[test]
fn conv2d_7x7_first_layer() {
    check(&[1, 3, 32, 32], &[64, 3, 7, 7], true, ConvParams::<2>::padding(3));
}

#[test]
fn conv2d_per_axis_parameters() {
    let p = ConvParams::<2> {
        stride: [2, 1],
        padding: [0, 2],
        dilation: [1, 2],
        groups: 1,
    };
    check(&[1, 4, 13, 11], &[6, 4, 3, 2], true, p);
}

#[test]
fn conv3d_7x7x7() {
    check(&[1, 4, 10, 12, 12], &[8, 4, 7, 7, 7], true, ConvParams::<3>::padding(3));
}

#[test]
fn conv3d_3x3x3() {
    check(
        &[1, 16, 8, 16, 16],
        &[32, 16, 3, 3, 3],
        true,
        ConvParams::<3>::padding(1),
    );
}

#[test]
fn conv3d_1x1x1() {
    check(&[1, 32, 4, 8, 8], &[16, 32, 1, 1, 1], false, ConvParams::<3>::default());
}

#[test]
fn conv3d_stride_2_groups_2_batch_2() {
    check(
        &[2, 8, 6, 9, 9],
        &[6, 4, 3, 3, 3],
        true,
        ConvParams::<3>::padding(1).with_stride(2).with_groups(2),
    );
}

#[test]
fn conv1d_strided() {
    check(
        &[2, 5, 33],
        &[7, 5, 4],
        true,
        ConvParams::<1>::padding(2).with_stride(3),
    );
}

#[test]
fn shape_errors_match_sadtalker_ops() {
    let Some(dev) = common::device() else { return };
    let x = up(dev, &rand_tensor(&[1, 4, 5, 5], 1));
    let w = up(dev, &rand_tensor(&[3, 4, 3, 3], 2));
    let b = up(dev, &rand_tensor(&[2], 3));
    let e = sadtalker_gpu::conv2d(&x, &w, Some(&b), ConvParams::default()).unwrap_err();
    assert!(
        matches!(e, GpuError::Shape { .. }) && e.to_string().contains("bias"),
        "{e}"
    );
    let e = sadtalker_gpu::conv2d(&x, &w, None, ConvParams::default().with_groups(3)).unwrap_err();
    assert!(e.to_string().contains("groups=3"), "{e}");
    let e = sadtalker_gpu::conv3d(&x, &w, None, ConvParams::default()).unwrap_err();
    assert!(e.to_string().contains("rank 5"), "{e}");
    let big = up(dev, &rand_tensor(&[3, 4, 7, 7], 4));
    let e = sadtalker_gpu::conv2d(&x, &big, None, ConvParams::default()).unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

#[test]
fn conv_column_tiles_fold_into_z() {
    // Past 65535 column tiles the kernel folds them into z with the groups; the cap makes that
    // happen at 7 tiles (a real case needs a 2100² output, 14 s on lavapipe).
    sadtalker_gpu::ops::conv::GRID_X_CAP.store(7, std::sync::atomic::Ordering::Relaxed);
    // 2 × 20 × 30 = 1200 columns, 19 tiles: 3 folds; with 2 groups z = 6.
    check(
        &[2, 4, 20, 30],
        &[6, 2, 3, 3],
        true,
        ConvParams::<2>::padding(1).with_groups(2),
    );
    check(&[1, 3, 5, 16, 16], &[4, 3, 3, 3, 3], false, ConvParams::<3>::padding(1));
    sadtalker_gpu::ops::conv::GRID_X_CAP.store(u32::MAX, std::sync::atomic::Ordering::Relaxed);
}

/// `padding_mode='reflect'` in the kernel equals `nn.ReflectionPad2d` then an unpadded conv,
/// also strided and with uneven padding per axis; padding as large as the axis is refused.
#[test]
fn reflection_padding_matches_padding_first() {
    let Some(dev) = common::device() else { return };
    for (x, w, pad, stride) in [
        (vec![2, 5, 9, 11], vec![7, 5, 3, 3], [1, 1], [1, 1]),
        (vec![1, 4, 8, 8], vec![6, 4, 3, 3], [1, 1], [2, 2]),
        (vec![1, 3, 6, 7], vec![4, 3, 5, 3], [2, 1], [1, 1]),
    ] {
        let xh = rand_tensor(&x, 21);
        let wh = rand_tensor(&w, 22);
        let bh = rand_tensor(&w[..1], 23);
        let padded = sadtalker_ops::reflection_pad2d(&xh, [pad[1], pad[1], pad[0], pad[0]]).unwrap();
        let want = sadtalker_ops::conv(
            &padded,
            &wh,
            Some(&bh),
            ConvParams::<2>::default().with_stride(stride[0]),
        )
        .unwrap();
        let p = ConvParams::<2> {
            padding: pad,
            stride,
            ..ConvParams::default()
        };
        let got = sadtalker_gpu::conv_padded(
            &up(dev, &xh),
            &up(dev, &wh),
            Some(&up(dev, &bh)),
            p,
            sadtalker_gpu::PaddingMode::Reflect,
        )
        .unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= TOL, "x {x:?} w {w:?} pad {pad:?}: relative error {e:e}");
    }
    let x = up(dev, &rand_tensor(&[1, 2, 2, 5], 1));
    let w = up(dev, &rand_tensor(&[2, 2, 5, 5], 2));
    let e = sadtalker_gpu::conv_padded(
        &x,
        &w,
        None,
        ConvParams::<2>::padding(2),
        sadtalker_gpu::PaddingMode::Reflect,
    )
    .unwrap_err();
    assert!(e.to_string().contains("reflection padding"), "{e}");
}
