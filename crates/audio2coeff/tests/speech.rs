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

/// `get_data` (goldens/audio/batch.safetensors, from gen_audio_goldens.py) through the production path:
/// `speech_input`'s mel windows and seeded blinks, and `Audio2CoeffInput::reference_at`'s per-frame
/// reference expression (`ref[:, :, :64]`, the eye-blink reference's when given) and `ratio_gt`.
#[test]
fn speech_input_matches_get_data_with_seeded_blinks() {
    use sadtalker_audio::{PyRandom, generate_blink_seq_randomly};
    let flat = |t: &Tensor| (t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t.dims().to_vec());
    let tensor = |data: &[f32], shape: &[usize]| Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap();
    let golden = Golden::open("goldens/audio/batch.safetensors");
    let speech = load_speech(fixtures_dir().join("audio/speech_16k.wav"), &LoadOptions::default()).unwrap();
    let mut checked = 0;
    for case in golden.cases() {
        let seed = case.params["seed"].as_u64().unwrap();
        let mut rng = PyRandom::seed(seed);
        match case.op() {
            "get_data" => {
                let (first, dims) = flat(&case.tensor("first"));
                let first = CoeffTable::new(dims[0], dims[1], first);
                let eyeblink = case.try_tensor("eyeblink").map(|t| {
                    let (d, s) = flat(&t);
                    CoeffTable::new(s[0], s[1], d)
                });
                let speech_in = speech_input(&speech.samples, true, &mut rng);
                let frames = speech_in.windows.num_frames();
                assert_eq!(frames, case.params["num_frames"].as_u64().unwrap() as usize);
                let kept = case.usizes("kept_frames");
                let mut windows = Vec::new();
                for &i in &kept {
                    windows.extend(
                        speech_in
                            .windows
                            .windows(i..i + 1)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap(),
                    );
                }
                let d = assert_close(
                    &format!("{} indiv_mels", case.name()),
                    &tensor(&windows, &[kept.len(), 80, 16]),
                    &case.tensor("indiv_mels_kept"),
                    1e-4 / 4.0,
                );
                assert!(d.max_abs <= 1e-4);
                let input = Audio2CoeffInput {
                    mels: &speech_in.windows,
                    first_frame: MotionCoeff::from_slice(&first.row(0)[..70]).unwrap(),
                    blink_ratio: &speech_in.blink_ratio,
                    ref_eyeblink: eyeblink.as_ref(),
                };
                let (reference, ratio): (Vec<Vec<f32>>, Vec<f32>) = (0..frames)
                    .map(|i| {
                        let (e, r) = input.reference_at(i);
                        (e.to_vec(), r)
                    })
                    .unzip();
                let (want_ref, _) = flat(&case.tensor("ref"));
                let want_exp: Vec<f32> = want_ref.chunks(70).flat_map(|row| row[..64].to_vec()).collect();
                let ours: Vec<f32> = reference.concat();
                assert_eq!(ours, want_exp, "{}: reference expression", case.name());
                let d = assert_close(
                    &format!("{} ratio_gt", case.name()),
                    &tensor(&ratio, &[frames, 1]),
                    &case.tensor("ratio_gt"),
                    0.0,
                );
                assert_eq!(d.max_abs, 0.0);
            }
            "blink" => {
                let frames = case.params["frames"].as_u64().unwrap() as usize;
                let ours = generate_blink_seq_randomly(frames, &mut rng);
                let d = assert_close(case.name(), &tensor(&ours, &[frames]), &case.tensor("ratio"), 0.0);
                assert_eq!(d.max_abs, 0.0);
            }
            other => panic!("unknown op {other}"),
        }
        checked += 1;
    }
    assert!(checked > 0);
}
