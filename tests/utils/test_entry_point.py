"""Command-line scripts end a user's mistake with one line and exit status 2; a bug still raises."""
import pytest

from utils.entry_point import run_entry_point


def _raise(exc: BaseException):
    def entry():
        raise exc
    return entry


def test_a_user_error_exits_2_with_one_line_and_no_traceback(capsys):
    with pytest.raises(SystemExit) as exited:
        run_entry_point(_raise(FileNotFoundError("data folder not found: x")))
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: data folder not found: x\n"


def test_the_caller_chooses_which_errors_are_the_users(capsys):
    with pytest.raises(SystemExit):
        run_entry_point(_raise(FileExistsError("exists")), (FileExistsError,))
    with pytest.raises(ValueError):
        run_entry_point(_raise(ValueError("a bug here")), (FileExistsError,))


def test_a_bug_is_not_hidden():
    with pytest.raises(ZeroDivisionError):
        run_entry_point(lambda: 1 / 0)
