//! Parity with the reference (goldens from `tools/reference/gen_coeffs_goldens.py`) and `.mat`
//! interchange with scipy in both directions.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};
use sadtalker_coeffs::camera::gen_camera_pose;
use sadtalker_coeffs::facerender::{FaceRenderOptions, get_facerender_data};
use sadtalker_coeffs::file::{AdaptOptions, CoeffTable, FirstFrameFile, adapt, read_crop_params};
use sadtalker_coeffs::mat::{MatData, MatFile, MatValue};
use sadtalker_coeffs::savgol::smooth_pose;
use sadtalker_coeffs::splice::apply_ref_pose;
use sadtalker_coeffs::{CoeffError, MotionCoeff};
use sadtalker_parity::{Golden, assert_close, fixtures_dir};

#[path = "../examples/write_mat_fixtures.rs"]
#[allow(dead_code)]
mod write_mat_fixtures;

fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> (Vec<f32>, Vec<usize>) {
    (t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t.dims().to_vec())
}

fn table(t: &Tensor) -> CoeffTable {
    let (data, dims) = flat(t);
    CoeffTable::new(dims[0], dims[1], data)
}

fn mat_path(name: &str) -> std::path::PathBuf {
    fixtures_dir().join("coeffs").join(name)
}

#[test]
fn reads_scipy_and_matlab_files() {
    let golden = Golden::open("goldens/coeffs/mat.safetensors");
    let mut seen = 0;
    for case in golden.cases() {
        let file = MatFile::read(fixtures_dir().join(case.params["file"].as_str().unwrap())).unwrap();
        let roles: &[&str] = match case.name() {
            "first_frame_scipy" => &["coeff_3dmm", "full_3dmm"],
            "motion_scipy" => &["coeff_3dmm"],
            "mixed_compressed_scipy" => &["coeff_3dmm", "ints", "flags"],
            "matlab_similarity" => &["lm"],
            other => panic!("unknown case {other}"),
        };
        for &role in roles {
            let reference = case.tensor(role);
            let (rows, cols, data) = file.array(role).unwrap().to_rows_f32().unwrap();
            let label = format!("{} {role}", case.name());
            let d = assert_close(&label, &tensor(&data, &[rows, cols]), &reference, 0.0);
            assert_eq!(d.max_abs, 0.0, "{label}");
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn mixed_file_classes_and_passthrough() {
    let file = MatFile::read(mat_path("mixed_compressed_scipy.mat")).unwrap();
    let ints = file.array("ints").unwrap();
    assert_eq!(ints.class().name(), "int16");
    assert!(file.array("flags").unwrap().logical);
    assert_eq!(file.array("name").unwrap().as_string().unwrap(), "sadtalker");
    assert!(matches!(file.array("coeff_3dmm").unwrap().data, MatData::Double(_)));
    for (name, class) in [("nested", "struct"), ("cells", "cell")] {
        match &file.get(name).unwrap().value {
            MatValue::Other { class: c, .. } => assert_eq!(c.name(), class),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The rewrite the Python side checked with scipy is still what we write.
    let committed = std::fs::read(mat_path("written_by_rust_passthrough.mat")).unwrap();
    assert_eq!(file.to_bytes().unwrap(), committed);
    // And reading it back gives the same variables.
    assert_eq!(
        MatFile::from_bytes(&committed, "rewrite").unwrap().variables,
        file.variables
    );
}

#[test]
fn writer_matches_scipy_byte_for_byte() {
    for name in ["first_frame_scipy.mat", "motion_scipy.mat"] {
        let original = std::fs::read(mat_path(name)).unwrap();
        let ours = MatFile::read(mat_path(name)).unwrap().to_bytes().unwrap();
        // Only the free-form description text (scipy puts the date there) may differ.
        assert_eq!(ours.len(), original.len(), "{name}");
        assert_eq!(ours[116..], original[116..], "{name}");
    }
    let committed = std::fs::read(mat_path("written_by_rust.mat")).unwrap();
    assert_eq!(write_mat_fixtures::written_by_rust().to_bytes().unwrap(), committed);
}

#[test]
fn adapter_round_trips_and_refuses_other_widths() {
    let motion_path = mat_path("motion_scipy.mat");
    let motion = MatFile::read(&motion_path).unwrap();
    let crop = read_crop_params(mat_path("first_frame_scipy.mat")).unwrap();
    let first = FirstFrameFile::read(mat_path("first_frame_scipy.mat")).unwrap();
    assert_eq!(first.coeff[0].crop(), crop);

    let to73 = AdaptOptions {
        to: 73,
        crop: Some(crop),
        from_full: false,
    };
    let (wide, report) = adapt(&motion, "motion", &to73).unwrap();
    assert_eq!((report.from, report.to, report.rows), (70, 73, 9));
    let committed = std::fs::read(mat_path("written_by_rust_adapted73.mat")).unwrap();
    assert_eq!(
        wide.to_bytes().unwrap(),
        committed,
        "scipy-checked adapter output changed"
    );

    let (narrow, _) = adapt(
        &wide,
        "wide",
        &AdaptOptions {
            to: 70,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        narrow.array("coeff_3dmm"),
        motion.array("coeff_3dmm"),
        "70→73→70 is lossless"
    );

    // 70 → 73 without crop parameters.
    let err = adapt(
        &motion,
        "m.mat",
        &AdaptOptions {
            to: 73,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, CoeffError::NoCropSource { .. }) && err.to_string().contains("--crop-from"));

    // 257 without --from-full, then with it (full_3dmm of the first-frame file).
    let mut full = MatFile::new();
    full.set(
        "coeff_3dmm",
        MatFile::read(mat_path("first_frame_scipy.mat"))
            .unwrap()
            .array("full_3dmm")
            .unwrap()
            .clone(),
    );
    let to70 = AdaptOptions {
        to: 70,
        ..Default::default()
    };
    let err = adapt(&full, "full.mat", &to70).unwrap_err();
    assert!(matches!(err, CoeffError::FullWithoutFlag { .. }), "{err}");
    let ff = MatFile::read(mat_path("first_frame_scipy.mat")).unwrap();
    let (from_full, report) = adapt(
        &ff,
        "first.mat",
        &AdaptOptions {
            to: 73,
            from_full: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (report.source_key.as_str(), report.from, report.crop),
        ("full_3dmm", 257, Some(crop))
    );
    let row = from_full.array("coeff_3dmm").unwrap().to_rows_f32().unwrap().2;
    let expect = first.full.unwrap().first_frame(crop);
    assert_eq!(row, expect.0.to_vec());

    // 71 columns.
    let mut odd = MatFile::new();
    odd.set(
        "coeff_3dmm",
        sadtalker_coeffs::mat::MatArray::from_rows_f32(2, 71, &[0.0; 142]),
    );
    let err = adapt(&odd, "odd.mat", &to70).unwrap_err();
    assert!(err.to_string().contains("71 columns"), "{err}");
    // Bad target.
    assert!(matches!(
        adapt(
            &motion,
            "m",
            &AdaptOptions {
                to: 72,
                ..Default::default()
            }
        ),
        Err(CoeffError::BadTarget(72))
    ));
}

#[test]
fn savgol_matches_scipy() {
    let golden = Golden::open("goldens/coeffs/savgol.safetensors");
    for case in golden.cases() {
        let (input, dims) = flat(&case.tensor("input"));
        let ours = smooth_pose(&input, dims[0], dims[1]);
        let d = assert_close(case.name(), &tensor(&ours, &dims), &case.tensor("output"), 1e-6);
        // scipy 1.17 solves the edge fit with float32 LAPACK (sgelsd): last-ulp differences remain.
        assert!(d.max_abs <= 2e-6, "{}: {}", case.name(), d.max_abs);
    }
}

#[test]
fn ref_pose_matches_reference() {
    let golden = Golden::open("goldens/coeffs/splice.safetensors");
    for case in golden.cases() {
        let coeffs = table(&case.tensor("coeffs"));
        let mut rows = coeffs.to_motion().unwrap();
        apply_ref_pose(&mut rows, &table(&case.tensor("reference"))).unwrap();
        let ours = CoeffTable::from_motion(&rows);
        let d = assert_close(
            case.name(),
            &tensor(&ours.data, &[ours.rows, 70]),
            &case.tensor("output"),
            0.0,
        );
        assert_eq!(d.max_abs, 0.0);
    }
    let _: Vec<MotionCoeff> = Vec::new();
}

#[test]
fn camera_paths_match_reference() {
    let golden = Golden::open("goldens/coeffs/camera.safetensors");
    for case in golden.cases() {
        let degrees: Vec<f64> = case.params["degrees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let frames = case.params["frames"].as_u64().unwrap() as usize;
        let bs = case.params["batch_size"].as_u64().unwrap() as usize;
        let path = gen_camera_pose(&degrees, frames, bs, "yaw").unwrap();
        let ours = tensor(&path.values, &[bs, path.per_batch()]);
        let d = assert_close(case.name(), &ours, &case.tensor("output"), 0.0);
        assert_eq!(d.max_abs, 0.0);
    }
}

#[test]
fn facerender_inputs_match_reference() {
    let golden = Golden::open("goldens/coeffs/facerender.safetensors");
    for case in golden.cases() {
        let list = |k: &str| {
            case.params[k]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_f64().unwrap()).collect::<Vec<f64>>())
        };
        let opts = FaceRenderOptions {
            batch_size: case.params["batch_size"].as_u64().unwrap() as usize,
            expression_scale: case.f64("expression_scale") as f32,
            still_mode: case.flag("still"),
            full: case.flag("full"),
            yaw: list("yaw"),
            pitch: list("pitch"),
            roll: list("roll"),
        };
        let d = get_facerender_data(&table(&case.tensor("first")), &table(&case.tensor("generated")), &opts).unwrap();
        let name = case.name();
        let src = tensor(&d.source_semantics, &[d.channels, 27]);
        assert_eq!(
            assert_close(&format!("{name} source"), &src, &case.tensor("source_semantics"), 0.0).max_abs,
            0.0
        );
        let tgt = tensor(
            &d.target_semantics,
            &[d.batch_size, d.frames_per_batch(), d.channels, 27],
        );
        assert_eq!(
            assert_close(&format!("{name} target"), &tgt, &case.tensor("target_semantics"), 0.0).max_abs,
            0.0
        );
        for (axis, path) in [("yaw", &d.yaw), ("pitch", &d.pitch), ("roll", &d.roll)] {
            match (path, case.try_tensor(axis)) {
                (Some(p), Some(r)) => {
                    let ours = tensor(&p.values, &[p.batch_size, p.per_batch()]);
                    assert_eq!(assert_close(&format!("{name} {axis}"), &ours, &r, 0.0).max_abs, 0.0);
                }
                (None, None) => {}
                _ => panic!("{name}: {axis} presence differs"),
            }
        }
    }
}
