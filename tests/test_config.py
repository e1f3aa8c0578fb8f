import argparse
import dataclasses
import json

import pytest

from stackgan.config import Config, opt
from stackgan.errors import ConfigError


@dataclasses.dataclass
class DemoConfig(Config):
    data: str = opt("data/menu", "data folder")
    image_size: int = opt(64, "image size", min=16, max=512)
    loss: str = opt("bce", "loss", choices=("bce", "hinge"))
    flip: bool = opt(False, "horizontal flips")
    lr: float = opt(2e-4, "learning rate", min=0.0)
    names: tuple[str, ...] = opt(("a", "b"), "names")

    def check(self) -> None:
        if self.image_size % 4:
            raise ConfigError("--image-size must be a multiple of 4")


def parse(argv):
    p = argparse.ArgumentParser()
    DemoConfig.add_arguments(p)
    return DemoConfig.from_args(p.parse_args(argv))


def test_defaults_and_options():
    cfg = parse([])
    assert cfg.image_size == 64 and cfg.loss == "bce" and cfg.flip is False and cfg.names == ("a", "b")
    cfg = parse(["--image-size", "32", "--loss", "hinge", "--flip", "--names", "x", "y", "z"])
    assert (cfg.image_size, cfg.loss, cfg.flip, cfg.names) == (32, "hinge", True, ("x", "y", "z"))


def test_validation_errors_are_clear():
    with pytest.raises(ConfigError, match="--image-size must be >= 16"):
        DemoConfig(image_size=8).validate()
    with pytest.raises(ConfigError, match="multiple of 4"):
        DemoConfig(image_size=18).validate()
    with pytest.raises(ConfigError, match="--loss must be one of"):
        DemoConfig(loss="wgan").validate()


def test_json_round_trip(tmp_path):
    cfg = DemoConfig(image_size=32, names=("カツ丼", "月見うどん")).validate()
    path = cfg.save_json(tmp_path / "run" / "config.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["_kind"] == "DemoConfig" and "カツ丼" in path.read_text(encoding="utf-8")
    assert DemoConfig.load_json(path) == cfg


def test_load_rejects_unknown_keys_wrong_kind_and_bad_json(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"_kind": "DemoConfig", "bogus": 1}))
    with pytest.raises(ConfigError, match="unknown DemoConfig keys: bogus"):
        DemoConfig.load_json(p)
    p.write_text(json.dumps({"_kind": "OtherConfig"}))
    with pytest.raises(ConfigError, match="is a OtherConfig"):
        DemoConfig.load_json(p)
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        DemoConfig.load_json(p)
    with pytest.raises(ConfigError, match="not found"):
        DemoConfig.load_json(tmp_path / "missing.json")


@dataclasses.dataclass
class RenamedConfig(Config):
    """A config whose fields were renamed: ``folder`` -> ``out``, ``lr`` -> ``lr_g`` and ``lr_d``."""

    RENAMED = {"folder": ("out",), "lr": ("lr_g", "lr_d")}

    out: str = opt("runs/x", "run folder")
    lr_g: float = opt(2e-4, "G rate", min=0.0)
    lr_d: float = opt(2e-4, "D rate", min=0.0)


def test_renamed_fields_keep_their_old_option_and_config_key(tmp_path, capsys):
    p = argparse.ArgumentParser()
    RenamedConfig.add_arguments(p)
    assert "deprecated spelling of --lr-g and --lr-d" in p.format_help()
    new = RenamedConfig.from_args(p.parse_args(["--out", "r", "--lr-g", "0.1", "--lr-d", "0.1"]))
    assert capsys.readouterr().err == ""
    old = RenamedConfig.from_args(p.parse_args(["--folder", "r", "--lr", "0.1"]))
    assert old == new and "folder" not in vars(p.parse_args([]))
    assert capsys.readouterr().err.splitlines() == ["note: --folder is deprecated; use --out",
                                                    "note: --lr is deprecated; use --lr-g and --lr-d"]
    # with both spellings, the later one wins (as for any repeated option)
    assert RenamedConfig.from_args(p.parse_args(["--lr", "0.1", "--lr-d", "0.3"])).lr_d == 0.3
    assert RenamedConfig.from_args(p.parse_args(["--lr-d", "0.3", "--lr", "0.1"])).lr_d == 0.1
    with pytest.raises(SystemExit):  # the old option keeps its type
        p.parse_args(["--lr", "fast"])
    # a config file written under the old names loads; it is saved under the new ones
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"_kind": "RenamedConfig", "folder": "r", "lr": 0.1}))
    assert RenamedConfig.load_json(path) == new
    assert RenamedConfig.renamed_dict({"folder": "a", "out": "b"}) == {"out": "b"}  # the new name wins
    assert "folder" not in new.to_dict() and new.to_dict()["out"] == "r"
    with pytest.raises(ConfigError, match="--lr-g must be >= 0"):
        RenamedConfig.from_dict({"lr": -1.0})
