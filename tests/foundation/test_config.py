from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from control import config
from control.config import ConfigError, setting


@dataclass(frozen=True)
class Limits:
    per_user: int = setting(10, doc="allocations per username")


@dataclass(frozen=True)
class ExampleConfig:
    region: str = setting(doc="region this node serves")
    port: int = setting(3478, doc="UDP listening port")
    ratio: float = setting(0.5, doc="a fraction")
    verbose: bool = setting(False, doc="log more")
    allow_peer: list[str] = setting(default_factory=list, doc="CIDRs relaying may reach")
    policy: Literal["eea", "nearest"] = setting("nearest", doc="room policy")
    cert: Path | None = setting(None, doc="TLS certificate")
    limits: Limits = setting(default_factory=Limits, doc="quotas")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_defaults_file_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, 'region = "eu-central"\nport = 4000\n[limits]\nper_user = 3\n')
    loaded = config.load(ExampleConfig, path, overrides={"port": "5000", "verbose": None})
    assert loaded.region == "eu-central"
    assert loaded.port == 5000
    assert loaded.verbose is False
    assert loaded.limits == Limits(per_user=3)


def test_section_of_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[turn]\nregion = "us-east"\nallow-peer = ["127.0.0.0/8"]\n')
    loaded = config.load(ExampleConfig, path, section="turn")
    assert loaded.allow_peer == ["127.0.0.0/8"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('region = "x"\nprot = 1\n', "unknown setting 'prot'"),
        ('region = "x"\nport = "many"\n', "port: expected a whole number, got 'many'"),
        ('region = "x"\nport = true\n', "port: expected a whole number, got True"),
        ('region = "x"\nverbose = "maybe"\n', "verbose: expected true or false, got 'maybe'"),
        ('region = "x"\npolicy = "anywhere"\n', "'anywhere' is not one of 'eea', 'nearest'"),
        ("port = 1\n", "missing required setting 'region'"),
        ('region = "x"\n[limits]\nper_user = "a"\n', "limits: per_user: expected a whole number"),
        ("region = \n", "Invalid value"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        config.load(ExampleConfig, path)
    assert str(path) in str(excinfo.value)
    assert message in str(excinfo.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(ExampleConfig, tmp_path / "absent.toml")


def test_cli_flags_generated_from_fields() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, ExampleConfig)
    args = parser.parse_args(
        ["--region", "eu-north", "--allow-peer", "127.0.0.0/8", "--allow-peer", "::1/128",
         "--verbose"]
    )
    overrides = config.overrides_from_args(args, ExampleConfig)
    loaded = config.load(ExampleConfig, overrides=overrides)
    assert loaded.region == "eu-north"
    assert loaded.allow_peer == ["127.0.0.0/8", "::1/128"]
    assert loaded.verbose is True
    assert "UDP listening port" in parser.format_help()


def test_every_field_is_documented() -> None:
    assert all(config.field_docs(ExampleConfig).values())
