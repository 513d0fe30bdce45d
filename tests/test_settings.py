"""The settings table and the API profile (pure units)."""

from __future__ import annotations


import pytest

from console.profile import MASK, ApiProfile, ProfileError
from console.settings import SETTINGS, SettingsError, data_dir, resolve


def test_defaults_match_design():
    settings = resolve({})
    assert (settings.host, settings.port, settings.open_browser, settings.status_ui) == ("127.0.0.1", 12607, True, "cli")
    assert settings.cache_ttl_hours == 168 and settings.cache_max_bytes == 2 * 1024**3
    assert settings.allow_private_api_url is False and settings.export_include_secrets is False


def test_every_design_env_var_is_in_the_table():
    names = {row.env for row in SETTINGS}
    for env in ("HOST", "PORT", "APP_DATA_DIR", "OPEN_BROWSER", "STATUS_UI", "ALLOWED_ORIGINS", "EXPORT_INCLUDE_SECRETS",
                "ALLOW_PRIVATE_API_URL", "ALLOW_PRIVATE_DOWNLOAD_URL", "ALLOW_REMOTE_DEBUG_LOG_API",
                "API_URL_HOST_ALLOWLIST", "DOWNLOAD_URL_HOST_ALLOWLIST", "CACHE_TTL_HOURS", "CACHE_MAX_BYTES"):
        assert env in names


def test_environment_then_overrides():
    settings = resolve({"PORT": "9000", "OPEN_BROWSER": "0", "API_URL_HOST_ALLOWLIST": "a.com, *.b.com"}, {"port": 9100})
    assert settings.port == 9100 and settings.open_browser is False
    assert settings.api_url_host_allowlist == ("a.com", "*.b.com")


def test_legacy_status_window_switch():
    assert resolve({"STATUS_WINDOW": "0"}).status_ui == "none"
    assert resolve({"STATUS_WINDOW": "0", "STATUS_UI": "cli"}).status_ui == "cli"


@pytest.mark.parametrize("env", [{"PORT": "eighty"}, {"PORT": "70000"}, {"OPEN_BROWSER": "maybe"},
                                 {"STATUS_UI": "gui"}, {"CACHE_MAX_BYTES": "-1"}])
def test_bad_values_name_the_variable(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        resolve(env)


def test_data_dir(tmp_path):
    assert data_dir(resolve({"APP_DATA_DIR": str(tmp_path)})) == tmp_path.resolve()
    assert "image-batch-console" in str(data_dir(resolve({})))


def test_profile_defaults_and_update():
    profile = ApiProfile.from_dict({"api_url": " http://h/v1 ", "temperature": None, "concurrency": 8})
    assert profile.api_url == "http://h/v1" and profile.temperature is None and profile.concurrency == 8
    assert profile.api_mode == "auto" and profile.stream is True and profile.allow_private_api is False
    updated = ApiProfile.from_dict({"model": "x"}, base=profile)
    assert updated.concurrency == 8 and updated.model == "x"


@pytest.mark.parametrize("data, message", [
    ({"concurrency": 65}, "concurrency must be between 1 and 64"),
    ({"concurrency": "4"}, "concurrency must be a number"),
    ({"n": 1.5}, "n must be a whole number"),
    ({"api_mode": "chat"}, "api_mode must be one of"),
    ({"stream": "yes"}, "stream must be true or false"),
    ({"extra_headers": {"X": 1}}, "extra_headers must be an object"),
    ({"extra_body": [1]}, "extra_body must be a JSON object"),
    ({"colour": "red"}, "unknown API profile field"),
])
def test_profile_errors_are_readable(data, message):
    with pytest.raises(ProfileError, match=message):
        ApiProfile.from_dict(data)


def test_profile_masks_key():
    profile = ApiProfile(api_key="sk-123")
    assert profile.to_dict()["api_key"] == MASK
    assert profile.to_dict(mask_key=False)["api_key"] == "sk-123"
    assert ApiProfile().to_dict()["api_key"] == ""
