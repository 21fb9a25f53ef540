//! The whole chain from files against the reference's `get_data` + `Audio2Coeff.generate`
//! (tools/reference/gen_audio2coeff_goldens.py, `speech.safetensors`): a real speech recording, the
//! first-frame `.mat`, Python-`random` blinks with the same seed, the reference's latent draws,
//! recipe weights under the official names.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};
use sadtalker_audio::{LoadOptions, PyRandom, load_speech};
use sadtalker_audio2coeff::speech::speech_input;
use sadtalker_audio2coeff::*;
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_coeffs::file::COEFF_KEY;
use sadtalker_coeffs::{CoeffTable, MotionCoeff};
use sadtalker_parity::{Golden, assert_close, fixtures_dir};

#[test]
fn speech_file_to_coefficients_matches_the_reference() {
    let w = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    let net = Audio2Coeff::from_weights(&w.pp("audio2exp"), &w.pp("audio2pose"), Audio2PoseConfig::default()).unwrap();
    let golden = Golden::open("goldens/audio2coeff/speech.safetensors");
    let mut cases = 0;
    for case in golden.cases() {
        let path = |key: &str| case.params[key].as_str().map(|p| fixtures_dir().join(p));
        let table = |key: &str| path(key).map(|p| CoeffTable::read(p, COEFF_KEY).unwrap());
        let speech = load_speech(path("audio").unwrap(), &LoadOptions::default()).unwrap();
        let mut rng = PyRandom::seed(case.params["random_seed"].as_u64().unwrap());
        let input = speech_input(&speech.samples, true, &mut rng);
        let reference_ratio: Vec<f32> = case.tensor("ratio").to_vec1().unwrap();
        let eyeblink = table("ref_eyeblink");
        if eyeblink.is_none() {
            assert_eq!(input.blink_ratio, reference_ratio, "{}: blinks", case.name());
        }
        let first = table("first_coeff").unwrap();
        let opts = Audio2CoeffOptions {
            pose_style: case.params["pose_style"].as_u64().unwrap() as u32,
            ref_pose: table("ref_pose"),
            ..Default::default()
        };
        let mut noise = ReplayNoise::new(case.tensor("z").to_vec2::<f32>().unwrap());
        let out = net
            .generate(
                &Audio2CoeffInput {
                    mels: &input.windows,
                    first_frame: MotionCoeff::from_slice(&first.row(0)[..70]).unwrap(),
                    blink_ratio: &input.blink_ratio,
                    ref_eyeblink: eyeblink.as_ref(),
                },
                &opts,
                &mut noise,
                &mut |_, _, _| {},
            )
            .unwrap();
        assert_eq!(noise.remaining(), 0);
        let ours: Vec<f32> = out.coeffs.iter().flat_map(|c| c.0).collect();
        let ours = Tensor::from_vec(ours, (out.coeffs.len(), 70), &Device::Cpu).unwrap();
        // Measured: ~3e-7 (mel spectrogram and networks both within f32 rounding of the reference).
        assert_close(case.name(), &ours, &case.tensor("coeffs"), 1e-5);
        cases += 1;
    }
    assert_eq!(cases, 2);
}
