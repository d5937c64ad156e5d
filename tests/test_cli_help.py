"""Every ``shiftlpips`` subcommand and argument has plain-text help; ``--version``; usage
mistakes are one line with exit status 2."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

import shiftlpips_jax as sl
from conftest import REPO
from shiftlpips_jax import cli

pytestmark = pytest.mark.fast

# reST that must not reach a terminal: roles, inline literals, literal-block markers.
MARKUP = re.compile(r":(func|class|meth|mod|data|attr|obj|ref):|``|`[^`\s]+`|::\s*$", re.M)


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise AssertionError("no subcommands")


def _walk(parser, prefix="shiftlpips"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{prefix} {name}")


def test_every_subcommand_and_argument_has_plain_help():
    parser = cli.build_parser()
    sub = _subparsers(parser)
    assert list(sub.choices) == ["compare", "pairs", "example", "eval", "shift-study", "bench"]
    listed = {a.dest: a.help for a in sub._choices_actions}
    walked = list(_walk(parser))
    assert len(walked) == 7
    for name, p in walked:
        if p is not parser:
            assert listed[name.split()[-1]], f"{name}: no one-line help in the command list"
        assert p.description and len(p.description) > 20, f"{name}: no description"
        for action in p._actions:
            what = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help != argparse.SUPPRESS and \
                len(action.help) > 8, f"{what}: no help text"
        text = p.format_help()
        bad = MARKUP.search(text)
        assert bad is None, f"{name} --help shows markup {bad.group(0)!r}: " \
                            f"...{text[max(0, bad.start() - 60):bad.end() + 60]}..."


def test_plain_text_strips_rest_markup():
    text = ("See :func:`~shiftlpips_jax.data.read_2afc` and :class:`Metric`, ``--net l2`` "
            "(``Lab``).\n\nExample::\n\n    run()\n::\n")
    assert cli.plain_text(text) == ("See read_2afc and Metric, --net l2 (Lab).\n\nExample:\n\n"
                                    "    run()\n")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"shiftlpips {sl.__version__}"
    res = subprocess.run([sys.executable, "-m", "shiftlpips_jax.cli", "--version"],
                         capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and res.stdout.strip() == f"shiftlpips {sl.__version__}"


@pytest.mark.parametrize("argv,message", [
    (["compare", "a.png"], "the following arguments are required: b"),
    (["eval", "root", "--mode", "3afc"], "argument --mode: invalid choice: '3afc'"),
    (["bench", "--repeats", "many"], "argument --repeats: invalid int value: 'many'"),
    (["nope"], "argument COMMAND: invalid choice: 'nope'"),
    (["compare", "a.png", "b.png", "--checkpoint", "ckpt", "--net", "vgg"],
     "--checkpoint ckpt already names the model; drop --net vgg"),
    (["pairs", "photos", "--checkpoint", "ckpt", "--net", "alex", "--variant", "lpips"],
     "drop --net alex and --variant lpips"),
    (["eval", "root", "--checkpoint", "ckpt", "--variant", "lpips"], "drop --variant lpips"),
])
def test_usage_mistakes_are_one_line_with_status_2(capsys, argv, message):
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and err.startswith(f"shiftlpips {argv[0]}: error:" if argv[0] != "nope"
                                             else "shiftlpips: error:")
