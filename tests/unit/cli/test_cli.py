"""The `vocflow` parser and what every command shares: the command list, and the
pseudonym key every command that handles records configures from its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocflow.streams import cli
from vocflow.streams.cli import COMMAND_ORDER, COMMANDS, build_parser, data, main, run
from vocflow.streams.cli.common import UserError
from vocflow.streams.privacy import pseudonyms


def test_every_command_is_listed_once_and_handled_by_its_group() -> None:
    assert sorted(COMMAND_ORDER) == sorted(COMMANDS)
    groups = {"admin", "run", "data", "query", "tools"}
    for name in COMMAND_ORDER:
        module = next(g for g in groups if name in getattr(cli, g).COMMANDS)
        argv = [name, *{"broker": ["up"], "rules": ["check"]}.get(name, [])]
        argv += {"shifts": ["load", "f.csv"], "replay": ["f.jsonl"]}.get(name, [])
        argv += {"contacts": ["--kpi", "abandoned"]}.get(name, [])
        func = build_parser().parse_args(argv).func
        assert func.__module__ == f"vocflow.streams.cli.{module}", name


class StoppedBeforeKafka(UserError):
    pass


@pytest.fixture()
def no_kafka(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Commands stop where they would first talk to Kafka; the key in use then is recorded."""
    keys: list[bytes] = []

    def prepare_kafka(*args: object) -> None:
        keys.append(pseudonyms._key)
        raise StoppedBeforeKafka("stopped before Kafka")

    for module in (run, data):
        monkeypatch.setattr(module, "prepare_kafka", prepare_kafka)
    monkeypatch.setattr(run, "check_port_free", lambda *args: None)
    return keys


def record_commands(tmp_path: Path) -> dict[str, list[str]]:
    shifts = tmp_path / "shifts.csv"
    shifts.write_text("agent_id,start,end\na1,2026-11-23 09:00,2026-11-23 12:00\n", "utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("", "utf-8")
    return {
        "sink": ["sink"],
        "simulate": ["simulate", "--hours", "1"],
        "replay": ["replay", str(events)],
        "shifts": ["shifts", "load", str(shifts)],
    }


@pytest.mark.parametrize("command", ["sink", "simulate", "replay", "shifts"])
def test_record_commands_create_and_use_the_data_dirs_key(
    command: str,
    tmp_path: Path,
    data_dir: Path,
    no_kafka: list[bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes: list[int] = []
    main(record_commands(tmp_path)[command], exit=codes.append)
    assert (codes, capsys.readouterr().err) == ([2], "vocflow: error: stopped before Kafka\n")
    key = bytes.fromhex((data_dir / pseudonyms.KEY_FILE).read_text("ascii"))
    assert no_kafka == [key] and pseudonyms._key == key != pseudonyms.DEVELOPMENT_KEY


@pytest.mark.parametrize("command", ["sink", "simulate", "replay", "shifts"])
def test_record_commands_use_the_configured_key(
    command: str,
    tmp_path: Path,
    data_dir: Path,
    no_kafka: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOCFLOW_PSEUDONYM_KEY", "deployment-secret")
    codes: list[int] = []
    main(record_commands(tmp_path)[command], exit=codes.append)
    assert codes == [2]
    assert no_kafka == [b"deployment-secret"] and pseudonyms._key == b"deployment-secret"
    assert not (data_dir / pseudonyms.KEY_FILE).exists()


def test_an_unusable_key_is_a_usage_error(
    tmp_path: Path, data_dir: Path, no_kafka: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir.write_text("a file, not a directory\n", "utf-8")
    codes: list[int] = []
    main(["simulate"], exit=codes.append)
    err = capsys.readouterr().err
    assert codes == [2] and no_kafka == []
    assert err.startswith(f"vocflow: error: cannot read or create the pseudonym key {data_dir}/")
    data_dir.unlink()
    data_dir.mkdir()
    (data_dir / pseudonyms.KEY_FILE).write_text("not hex\n", "ascii")
    main(["simulate"], exit=codes.append)
    assert codes == [2, 2] and no_kafka == []
    assert "does not hold a hex key" in capsys.readouterr().err


def test_commands_without_records_need_no_key(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vocflow.streams.tools import broker

    monkeypatch.setattr(broker, "fetch", lambda quiet: Path("/opt/kafka"))
    key = pseudonyms._key
    codes: list[int] = []
    for argv in (["broker", "fetch"], ["sql", "--kpi", "backlog"], ["rules", "check"]):
        main(argv, exit=codes.append)
    assert codes == [0, 0, 0], capsys.readouterr().err
    assert pseudonyms._key is key
    assert not (data_dir / pseudonyms.KEY_FILE).exists()


def test_group_modules_import_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from vocflow.streams.cli import build_parser; build_parser(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'faust', 'kafka', 'aiokafka', 'clickhouse_connect', 'chdb', 'jieba', 'tqdm', "
        "'prometheus_client', 'aiohttp', 'uvloop'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_the_commands_in_their_order() -> None:
    text = build_parser().format_help()
    positions = [text.index(f"\n    {name} ") for name in COMMAND_ORDER]
    assert positions == sorted(positions)


@pytest.mark.parametrize("command", ["sink", "simulate", "replay", "shifts"])
def test_a_cluster_elsewhere_needs_an_explicit_key(
    command: str,
    tmp_path: Path,
    data_dir: Path,
    no_kafka: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each host would otherwise create its own key file: one phone number, two
    pseudonyms. On loopback (one machine) the data dir's file is shared."""
    monkeypatch.setenv("VOCFLOW_KAFKA_BOOTSTRAP", "kafka-1.prod:9093,127.0.0.1:9092")
    codes: list[int] = []
    main(record_commands(tmp_path)[command], exit=codes.append)
    assert codes == [2] and no_kafka == []
    assert capsys.readouterr().err == (
        "vocflow: error: the Kafka cluster kafka-1.prod:9093,127.0.0.1:9092 is not on this "
        "machine, so every vocflow process of the deployment must use one pseudonym key: set "
        "VOCFLOW_PSEUDONYM_KEY or VOCFLOW_PSEUDONYM_KEY_FILE (docs/security.md, "
        '"Pseudonym key")\n'
    )
    assert not (data_dir / pseudonyms.KEY_FILE).exists()
    key_file = tmp_path / "key"
    key_file.write_text("deployment-secret\n", "utf-8")
    monkeypatch.setenv("VOCFLOW_PSEUDONYM_KEY_FILE", str(key_file))
    main(record_commands(tmp_path)[command], exit=codes.append)
    assert no_kafka == [b"deployment-secret"]
    monkeypatch.delenv("VOCFLOW_PSEUDONYM_KEY_FILE")
    monkeypatch.setenv("VOCFLOW_KAFKA_BOOTSTRAP", "127.0.0.1:39092,localhost:39093")
    main(record_commands(tmp_path)[command], exit=codes.append)
    assert (data_dir / pseudonyms.KEY_FILE).exists()
