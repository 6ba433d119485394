"""The CLI contract: exit codes and one-line errors."""


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_unknown_command_is_usage_error(cli):
    result = cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_version(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert "echosearch" in result.stdout
