"""A wrong or missing config field fails at start, naming the file, the field and what was expected."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bosun.apps.cli import main
from bosun.apps import config
from bosun.runtime.config import ConfigError, secret
from services.risk import limits


def test_defaults_make_a_working_demo_config():
    cfg = config.load(None)
    assert [c.id for c in cfg.clients] == ["demo"]
    assert cfg.clients[0].strategies == [s.name for s in cfg.strategies]


def test_the_demo_client_has_caps_so_a_first_run_shows_risk_at_work():
    risk = config.load(None).risk_config().clients["demo"]
    assert (risk.max_position, risk.max_order_notional, risk.price_band_pct) == (Decimal("0.05"), Decimal(5000),
                                                                                Decimal(5))
    assert [limit.name for limit in limits.build(risk)] == [
        "kill_switch", "stale_target", "stale_price", "max_position", "max_order_notional", "price_band"]


@pytest.mark.parametrize("text, expected", [
    ('[[clients]]\nid = "a"\ncapital = "lots"\n', "Invalid decimal string - at `$.clients[0].capital`"),
    ('[[clients]]\nid = "a"\n[clients.venues.binance]\nfee_bsp = 3\n',
     "Object contains unknown field `fee_bsp` - at `$.clients[0].venues[...]`"),
    ('[[strategies]]\nsymbol = "BTCUSDT"\n', "Object missing required field `name` - at `$.strategies[0]`"),
    ('[ingest]\nspeed = -1\n', "ingest.speed must be >= 0"),
    ('[ingest]\ngap_fill_max_bars = -1\n', "ingest.gap_fill_max_bars must be >= 0"),
    ('[portfolio]\nsnapshot_interval_s = nan\n', "portfolio.snapshot_interval_s must be a number of seconds above 0"),
    ('[portfolio]\nmax_price_age_s = 0\n', "portfolio.max_price_age_s must be a number of seconds above 0"),
    ('[[clients]]\nid = "a.b"\n', "client id 'a.b' is not a valid subject token"),
    ('[[clients]]\nid = "a"\nstrategies = ["nope"]\n', "client 'a' names strategy 'nope', which is not among"),
    ('[[strategies]]\nname = "a"\n[[strategies]]\nname = "b"\n[[clients]]\nid = "c"\nstrategies = ["a", "b"]\n',
     "client 'c' follows 'a' and 'b' on the same binance.BTCUSDT; their targets would overwrite each other"),
    ('[[clients]]\nid = "c"\n[clients.venues.binance]\nkind = "live"\n',
     "client 'c' has live venue 'binance' but mode is 'shadow': real orders need mode = \"live\""),
    ('mode = "yolo"\n', "Invalid enum value 'yolo' - at `$.mode` (expected one of: 'backtest', 'paper', 'shadow', "
                         "'live')"),
    ('[[clients]]\nid = "a"\n[clients.venues.binance]\nfill = "later"\n',
     "at `$.clients[0].venues[...].fill` (expected one of: 'next_open', 'close')"),
])
def test_a_wrong_field_is_named_with_the_file(tmp_path, text, expected):
    path = tmp_path / "bosun.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_a_full_config_decodes_to_typed_values(tmp_path):
    path = tmp_path / "bosun.toml"
    path.write_text('[[strategies]]\nname = "s"\nparams = { fast = 3, slow = 7 }\n'
                    '[[clients]]\nid = "a"\nstrategies = ["s"]\nsizing = { kind = "equity_fraction", fraction = "0.5" }\n'
                    'risk = { max_position = "2", max_price_age_s = 60 }\n')
    cfg = config.load(path)
    assert cfg.clients[0].sizing.fraction == Decimal("0.5")
    assert cfg.clients[0].risk.max_position == Decimal(2)
    assert cfg.strategies[0].params == {"fast": 3, "slow": 7}


def test_the_cli_exits_2_with_the_message(tmp_path, capsys):
    path = tmp_path / "bosun.toml"
    path.write_text('[[clients]]\nid = "a"\nsurname = "x"\n')
    assert main(["status", "--config", str(path)]) == 2
    assert f"{path}: Object contains unknown field `surname` - at `$.clients[0]`" in capsys.readouterr().err


def test_a_missing_secret_names_the_variable(monkeypatch):
    monkeypatch.delenv("BOSUN_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match="BOSUN_TEST_SECRET is not set"):
        secret("BOSUN_TEST_SECRET")
