"""Builds the reference networks exactly as the reference pipeline does (official yaml configs), so
scripts can write checkpoints with the official key names and shapes.

Configs come from $SADTALKER_CONFIG_DIR, else ../shared/reference/config next to the repo.
"""
import os
import warnings

warnings.filterwarnings("ignore")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG_DIR = os.environ.get("SADTALKER_CONFIG_DIR", os.path.join(ROOT, "..", "shared", "reference", "config"))


def config_path(name: str) -> str:
    p = os.path.join(CONFIG_DIR, name)
    if not os.path.exists(p):
        raise SystemExit(f"missing {p}: set SADTALKER_CONFIG_DIR to the folder with the official SadTalker configs")
    return p


def facerender(still: bool = False):
    """(kp_extractor, generator, he_estimator, mapping) as AnimateFromCoeff builds them."""
    import yaml
    from sadtalker.facerender.modules.generator import OcclusionAwareSPADEGenerator
    from sadtalker.facerender.modules.keypoint_detector import HEEstimator, KPDetector
    from sadtalker.facerender.modules.mapping import MappingNet

    with open(config_path("facerender_still.yaml" if still else "facerender.yaml")) as f:
        mp = yaml.safe_load(f)["model_params"]
    gen = OcclusionAwareSPADEGenerator(**mp["generator_params"], **mp["common_params"])
    kp = KPDetector(**mp["kp_detector_params"], **mp["common_params"])
    he = HEEstimator(**mp["he_estimator_params"], **mp["common_params"])
    mapping = MappingNet(**mp["mapping_params"])
    return kp, gen, he, mapping


def audio2coeff():
    """(audio2pose, audio2exp) as Audio2Coeff builds them."""
    from yacs.config import CfgNode as CN
    from sadtalker.audio2exp_models.audio2exp import Audio2Exp
    from sadtalker.audio2exp_models.networks import SimpleWrapperV2
    from sadtalker.audio2pose_models.audio2pose import Audio2Pose

    cfg_pose = CN(new_allowed=True)
    cfg_pose.merge_from_file(config_path("auido2pose.yaml"))
    cfg_exp = CN(new_allowed=True)
    cfg_exp.merge_from_file(config_path("auido2exp.yaml"))
    pose = Audio2Pose(cfg_pose, None, device="cpu")
    exp = Audio2Exp(SimpleWrapperV2(), cfg_exp, device="cpu", prepare_training_loss=False)
    return pose, exp


def face_3drecon():
    """The ResNet-50 3DMM regressor as CropAndExtract builds it."""
    from sadtalker.face3d.models import networks

    return networks.define_net_recon(net_recon="resnet50", use_last_fc=False, init_path="")


def safetensors_modules():
    """The prefixes and modules of SadTalker_V0.0.2_{256,512}.safetensors, in the reference loaders' names."""
    kp, gen, _he, _mapping = facerender()
    pose, exp = audio2coeff()
    return {
        "kp_extractor": kp,
        "generator": gen,
        "audio2pose": pose,
        # The reference loads `audio2exp.*` into Audio2Exp's inner SimpleWrapperV2 (netG), so the
        # file's keys are `audio2exp.audio_encoder.*` / `audio2exp.mapping1.*`, not `audio2exp.netG.*`.
        "audio2exp": exp.netG,
        "face_3drecon": face_3drecon(),
    }
