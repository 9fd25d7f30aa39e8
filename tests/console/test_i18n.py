"""The console's catalogs: every language has every key, no key is defined twice, and a
request's language folds as the public pages' does."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.web.console import i18n
from engine.web.console.app import HERE


def write(root: Path, lang: str, name: str, text: str) -> None:
    (root / lang).mkdir(parents=True, exist_ok=True)
    (root / lang / name).write_text(text, "utf-8")


def test_the_shipped_catalogs_agree_and_merge_every_area() -> None:
    catalogs = i18n.Catalogs(HERE / "locales")
    english, chinese = catalogs.by_lang["en"], catalogs.by_lang["zh-Hans"]
    assert set(english) == set(chinese)
    assert catalogs.text("zh-Hans", "login.title") == "登录"
    assert catalogs.text("en", "campaigns.show.title", name="x") == "Campaign x"
    areas = {path.stem for path in (HERE / "locales" / "en").glob("*.toml")}
    assert "console" in areas
    for area in areas - {"console"}:  # every area's file is merged under its own table
        assert any(key.startswith(f"{area}.") for key in english), area


def test_a_missing_translation_or_a_key_twice_refuses_to_start(tmp_path: Path) -> None:
    write(tmp_path, "en", "a.toml", '[a]\nx = "X"\ny = "Y"\n')
    write(tmp_path, "zh-Hans", "a.toml", '[a]\nx = "叉"\n')
    with pytest.raises(ValueError, match=r"missing in zh-Hans: a\.y"):
        i18n.Catalogs(tmp_path)
    write(tmp_path, "zh-Hans", "a.toml", '[a]\nx = "叉"\ny = "歪"\n')
    write(tmp_path, "en", "b.toml", '[a]\nx = "again"\n')
    with pytest.raises(ValueError, match="defined twice"):
        i18n.Catalogs(tmp_path)


@pytest.mark.parametrize(
    ("explicit", "remembered", "accept", "chosen"),
    [
        ("zh-Hans", None, None, "zh-Hans"),
        ("zh-CN", None, "en", "zh-Hans"),
        ("zh_CN", None, None, "zh-Hans"),
        (None, "zh-Hans", "en", "zh-Hans"),
        ("xx", None, "zh-CN,zh;q=0.9", "zh-Hans"),
        (None, None, "zh-TW", "en"),
        (None, None, "de-DE,en;q=0.5", "en"),
        (None, None, None, "en"),
    ],
)
def test_language_choice(
    explicit: str | None, remembered: str | None, accept: str | None, chosen: str
) -> None:
    assert i18n.choose(explicit, remembered, accept) == chosen
