"""Secrets: ``<key>_file`` indirection, and values that never leak into errors or repr."""

from __future__ import annotations

from pathlib import Path

from deploy_fetcher.config._models import MAX_SECRET_FILE_BYTES

SECRET = "ghp_s3cr3tT0kenValue"


def _source(extra: str) -> str:
    return f"sources:\n  - {{name: a, provider: repo, repos: [], {extra}}}\n"


def test_secret_from_file_is_stripped(load, tmp_path: Path):
    """token_file reads the file and strips surrounding whitespace (a trailing newline)."""
    secret = tmp_path / "token"
    secret.write_text(f"  {SECRET}\n", encoding="utf-8")
    config = load(_source(f"token_file: '{secret}'"))
    assert SECRET == config.sources[0].token.get_secret_value()


def test_secret_file_path_may_be_interpolated(load, tmp_path: Path):
    """The _file path itself may come from the environment."""
    (tmp_path / "token").write_text(SECRET, encoding="utf-8")
    config = load(_source("token_file: '${SECRETS}/token'"), SECRETS=str(tmp_path))
    assert SECRET == config.sources[0].token.get_secret_value()


def test_secret_file_in_a_nested_section(load, tmp_path: Path):
    """_file works for secrets of nested sections (a GitHub App's private key)."""
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN KEY-----\nabc\n-----END KEY-----\n", encoding="utf-8")
    config = load(_source(f"app: {{app_id: 1, private_key_file: '{key}'}}"))
    expected = "-----BEGIN KEY-----\nabc\n-----END KEY-----"
    assert expected == config.sources[0].app.private_key.get_secret_value()


def test_missing_secret_file_is_reported_at_the_file_key(load, tmp_path: Path):
    """A missing secret file is an error at the _file key, naming the file and the reason."""
    path = tmp_path / "absent"
    error = load.error(_source(f"token_file: '{path}'"))
    expected = ("sources[0].token_file", f"cannot read {path}: No such file or directory")
    assert expected == (error.path, error.message)


def test_missing_nested_secret_file_path(load, tmp_path: Path):
    """The path of a nested secret file's error goes through the nested section."""
    error = load.error(_source(f"app: {{app_id: 1, private_key_file: '{tmp_path / 'absent'}'}}"))
    assert "sources[0].app.private_key_file" == error.path


def test_empty_secret_file_is_refused(load, tmp_path: Path):
    """A secret file holding only whitespace is an error, not an empty credential."""
    path = tmp_path / "empty"
    path.write_text("\n", encoding="utf-8")
    error = load.error(_source(f"token_file: '{path}'"))
    assert ("sources[0].token_file", f"{path} is empty") == (error.path, error.message)


def test_oversized_secret_file_is_refused(load, tmp_path: Path):
    """A file far larger than any credential is refused (most likely the wrong path)."""
    path = tmp_path / "big"
    path.write_bytes(b"x" * (MAX_SECRET_FILE_BYTES + 1))
    error = load.error(_source(f"token_file: '{path}'"))
    expected = f"{path} is larger than 64 KiB, which no token or key is"
    assert expected == error.message


def test_secret_and_secret_file_together_are_refused(load, tmp_path: Path):
    """Giving both token and token_file is ambiguous and refused."""
    error = load.error(_source(f"token: x, token_file: '{tmp_path}/t'"))
    expected = ("sources[0].token_file", "give either token or token_file, not both")
    assert expected == (error.path, error.message)


def test_file_suffix_on_a_non_secret_is_an_unknown_key(load):
    """Only secret keys have a _file form."""
    error = load.error(_source("url_file: /x"))
    assert ("sources[0].url_file", True) == (error.path, error.message.startswith("unknown key"))


def test_secret_is_not_in_repr(load):
    """The loaded configuration's repr masks the secret."""
    config = load(_source(f"token: {SECRET}"))
    assert SECRET not in repr(config)


def test_secret_is_not_in_a_validation_error(load):
    """A secret's value is redacted from an error message that would otherwise quote it."""
    error = load.error(_source(f"token: {SECRET}, interval: {SECRET}"))
    expected = "not a duration: '**********' (use e.g. 30s, 5m, 2h, 7d)"
    assert (expected, False) == (error.message, SECRET in str(error))


def test_secret_from_the_environment_is_not_in_errors(load):
    """An interpolated secret never appears in the error, nor in its exception chain."""
    error = load.error(_source("token: '${TOKEN}', interval: '${TOKEN}'"), TOKEN=SECRET)
    chain = [error, error.__cause__, error.__context__]
    assert [False, None, None] == [SECRET in str(error), chain[1], chain[2]]


def test_secret_of_wrong_type_is_not_quoted(load):
    """A secret given as a list is reported by its shape, never by its content."""
    error = load.error(_source(f"token: [{SECRET}]"))
    assert ("sources[0].token", "must be a string, not a list") == (error.path, error.message)


def test_url_is_not_quoted(load):
    """A bad URL is refused without quoting it (URLs may embed credentials)."""
    error = load.error("sinks:\n  - {name: a, type: hook, url: 'https://user:hunter22@x.test'}\n")
    assert "hunter22" not in str(error)


def test_long_secret_is_not_in_a_shortened_quote(load):
    """A long secret quoted in a shortened form is still redacted."""
    long_secret = "glpat-" + "x1y2z3" * 10
    error = load.error(_source(f"token: {long_secret}, interval: {long_secret}"))
    assert (False, True) == (long_secret[:20] in str(error), "'**********'" in error.message)
