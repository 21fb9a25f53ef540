//! Resampling parity: `cv2.resize` (INTER_LINEAR) and PIL's `resize` (bicubic, Lanczos) and `crop`,
//! value for value (goldens: tools/reference/gen_preprocess_goldens.py, section `resize`).

mod common;

use common::{assert_same_image, tensor_image};
use sadtalker_parity::Golden;
use sadtalker_preprocess::imgproc::{PilFilter, cv_resize_linear, pil_crop, pil_resize};

#[test]
fn resampling_matches_opencv_and_pil_exactly() {
    let g = Golden::open("goldens/preprocess/resize.safetensors");
    let mut n = 0;
    for case in g.cases() {
        let input = tensor_image(&case.tensor("input"));
        let reference = tensor_image(&case.tensor("output"));
        let size = || (case.f64("width") as u32, case.f64("height") as u32);
        let ours = match case.op() {
            "cv_resize_linear" => {
                let (w, h) = size();
                cv_resize_linear(&input, w, h)
            }
            "pil_resize_bicubic" => {
                let (w, h) = size();
                pil_resize(&input, w, h, PilFilter::Bicubic)
            }
            "pil_resize_lanczos" => {
                let (w, h) = size();
                pil_resize(&input, w, h, PilFilter::Lanczos)
            }
            "pil_crop" => {
                let b = case.params["box"].as_array().expect("box");
                let b: Vec<i64> = b.iter().map(|v| v.as_i64().expect("int")).collect();
                pil_crop(&input, [b[0], b[1], b[2], b[3]])
            }
            other => panic!("unknown op {other}"),
        };
        assert_same_image(case.name(), &ours, &reference);
        n += 1;
    }
    assert!(n >= 15, "only {n} cases");
}
