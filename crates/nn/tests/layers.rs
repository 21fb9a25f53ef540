//! Each layer against PyTorch, loaded by name from a torch.save'd state dict
//! (tools/reference/gen_nn_goldens.py), and strict: every tensor in the file is used.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};
use sadtalker_nn::*;
use sadtalker_parity::{Golden, assert_close, fixtures_dir};

#[test]
fn layers_match_pytorch_and_use_every_weight() {
    let w = Weights::from_file(fixtures_dir().join("checkpoints/nn_layers.pth"), &Device::Cpu).unwrap();
    let conv2d = Conv2d::load(&w.pp("conv2d"), 3, 8, [3, 3], ConvParams::padding(1), true).unwrap();
    let conv2d_s2 = Conv2d::load(
        &w.pp("conv2d_s2"),
        3,
        4,
        [7, 7],
        ConvParams::padding(3).with_stride(2),
        false,
    )
    .unwrap();
    let conv3d = Conv3d::load(&w.pp("conv3d"), 4, 6, [3, 3, 3], ConvParams::padding(1), true).unwrap();
    let conv1d = Conv1d::load(&w.pp("conv1d"), 5, 7, [3], ConvParams::default().with_dilation(3), true).unwrap();
    let bn2d = BatchNorm::load(&w.pp("bn2d"), 8, BatchNorm::EPS).unwrap();
    let bn3d = BatchNorm::load(&w.pp("bn3d"), 6, BatchNorm::EPS).unwrap();
    let bn1d = BatchNorm::load(&w.pp("bn1d"), 7, 1e-3).unwrap();
    let inorm = InstanceNorm::load(&w.pp("inorm"), 8, 1e-5, true).unwrap();
    let inorm_plain = InstanceNorm::load(&w.pp("inorm_plain"), 6, 1e-5, false).unwrap();
    let fc = Linear::load(&w.pp("fc"), 10, 5, true).unwrap();
    let fc_nobias = Linear::load(&w.pp("fc_nobias"), 10, 3, false).unwrap();
    let deconv_params = ConvParams {
        stride: [2, 1],
        ..Default::default()
    };
    let deconv = ConvTranspose2d::load(&w.pp("deconv"), 6, 4, [2, 1], deconv_params, [0, 0], true).unwrap();
    assert!(
        w.unused().is_empty(),
        "weights in the file no layer took: {:?}",
        w.unused()
    );

    let golden = Golden::open("goldens/nn/layers.safetensors");
    for case in golden.cases() {
        let x = case.tensor("input");
        let run = |f: &dyn Fn(&Tensor) -> Result<Tensor>| f(&x).unwrap();
        let ours = match case.op() {
            "conv2d" => run(&|x| conv2d.forward(x)),
            "conv2d_s2" => run(&|x| conv2d_s2.forward(x)),
            "conv3d" => run(&|x| conv3d.forward(x)),
            "conv1d" => run(&|x| conv1d.forward(x)),
            "bn2d" => run(&|x| bn2d.forward(x)),
            "bn3d" => run(&|x| bn3d.forward(x)),
            "bn1d" => run(&|x| bn1d.forward(x)),
            "inorm" => run(&|x| inorm.forward(x)),
            "inorm_plain" => run(&|x| inorm_plain.forward(x)),
            "fc" => run(&|x| fc.forward(x)),
            "fc_nobias" => run(&|x| fc_nobias.forward(x)),
            "deconv" => run(&|x| deconv.forward(x)),
            op => panic!("unknown layer {op}"),
        };
        assert_close(case.name(), &ours, &case.tensor("output"), 1e-5);
    }
}

#[test]
fn a_layer_with_the_wrong_configuration_fails_by_name() {
    let w = Weights::from_file(fixtures_dir().join("checkpoints/nn_layers.pth"), &Device::Cpu).unwrap();
    // Declared with 16 outputs, the file has 8: the error names the tensor and both shapes.
    let err = Conv2d::load(&w.pp("conv2d"), 3, 16, [3, 3], ConvParams::padding(1), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`conv2d.weight`") && err.contains("[8, 3, 3, 3]") && err.contains("[16, 3, 3, 3]"),
        "{err}"
    );
}
