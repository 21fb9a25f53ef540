"""Writes crates/store/manifest.json (the model manifest compiled into `sadtalker`) from
shared/reference/official-models.tsv.

The TSV lists each official file with its byte size, SHA-256, reference-layout path and URLs; this adds
which features need each file (see the crate docs of sadtalker-store). Run from the repository root:

    python3 tools/reference/models_manifest.py [../shared/reference/official-models.tsv]

A test (`manifest_matches_reference_tsv` in crates/store) checks the JSON against the TSV when the TSV is there.
"""

import json
import pathlib
import sys

# Which features (`sadtalker models fetch --for F`, `ModelStore::require`) need each file. Generation
# (256/512, and the legacy set) also needs face detection + landmarks for the crop; the GFPGAN and
# RestoreFormer enhancers need the detector and the face parser (facexlib's FaceRestoreHelper).
FEATURES = {
    "SadTalker_V0.0.2_256.safetensors": ["256"],
    "SadTalker_V0.0.2_512.safetensors": ["512"],
    "mapping_00109-model.pth.tar": ["256", "512", "legacy"],
    "mapping_00229-model.pth.tar": ["256", "512", "legacy"],
    "detection_Resnet50_Final.pth": ["256", "512", "legacy", "face", "enhancer", "restoreformer"],
    "alignment_WFLW_4HG.pth": ["256", "512", "legacy", "face"],
    "GFPGANv1.4.pth": ["enhancer"],
    "parsing_parsenet.pth": ["enhancer", "restoreformer"],
    "RestoreFormer.pth": ["restoreformer"],
    "auido2exp_00300-model.pth": ["legacy"],
    "auido2pose_00140-model.pth": ["legacy"],
    "epoch_20.pth": ["legacy"],
    "facevid2vid_00189-model.pth.tar": ["legacy"],
}


# Files the reference downloads that are not in official-models.tsv: the background enhancer's weights
# (face_enhancer.py fetches them from the Real-ESRGAN v0.2.1 release). Size and SHA-256 as published for
# that release file (the same pair in several independent public manifests; the key layout matches:
# RRDBNet x2plus's f32 payload is 66,812,684 bytes, 0.37 % under the file size).
EXTRA = [
    {
        "name": "RealESRGAN_x2plus.pth",
        "path": "gfpgan/weights/RealESRGAN_x2plus.pth",
        "size": 67061725,
        "sha256": "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        "urls": ["https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"],
        "features": ["realesrgan"],
    },
]


def main() -> None:
    tsv = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/reference/official-models.tsv")
    files = []
    for line in tsv.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, size, sha256, path, urls = line.split("\t")
        files.append(
            {
                "name": name,
                "path": path,
                "size": int(size),
                "sha256": sha256,
                "urls": urls.split(),
                "features": FEATURES[name],
            }
        )
    doc = {"version": 1, "files": files + EXTRA}
    out = pathlib.Path("crates/store/manifest.json")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}: {len(files)} files")


if __name__ == "__main__":
    main()
