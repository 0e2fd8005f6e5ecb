"""The Dockerfile and .dockerignore readers the image tests rely on."""

import pytest
from tests.deploy._dockerfile import expand, parse
from tests.deploy._dockerignore import is_excluded
from tests.deploy._dockerignore import parse as parse_ignore
from tests.deploy._pod import PodFiles


def test_continuation_lines_are_joined_and_inner_comments_dropped():
    """A backslash continues the instruction; comment lines inside it are not part of it."""
    text = "FROM a\nRUN one \\\n# a comment\n    two \\\n\n    three\n"
    run = parse(text).final.all("RUN")[0]
    assert "one two three" == run.args
    assert 2 == run.line


def test_escape_directive_changes_the_continuation_character():
    """``# escape=` `` makes the backtick the continuation character."""
    text = "# escape=`\nFROM a\nRUN one `\n    two\n"
    dockerfile = parse(text)
    assert {"escape": "`"} == dockerfile.directives
    assert "one two" == dockerfile.final.all("RUN")[0].args


def test_exec_form_is_a_list_and_shell_form_is_not():
    """A JSON array is the exec form; anything else is the shell form."""
    dockerfile = parse('FROM a\nCMD ["run", "--x"]\nENTRYPOINT fetcher run\n')
    assert ["run", "--x"] == dockerfile.final.last("CMD").exec_form
    assert None is dockerfile.final.last("ENTRYPOINT").exec_form


def test_stages_take_names_and_global_arg_defaults():
    """Global ARG defaults are substituted into FROM; ``AS`` names the stage."""
    text = "ARG BASE=python:3.11.9-slim\nFROM ${BASE} AS build\nRUN x\nFROM $BASE\nRUN y\n"
    dockerfile = parse(text)
    assert ["python:3.11.9-slim", "python:3.11.9-slim"] == [s.base for s in dockerfile.stages]
    assert "build" == dockerfile.stage("build").name
    assert None is dockerfile.final.name


def test_flags_are_split_from_arguments():
    """Leading ``--name=value`` words are options of RUN/COPY/HEALTHCHECK."""
    text = 'FROM a\nCOPY --from=build --chown=1:1 /w /w\nHEALTHCHECK --interval=5s CMD ["x"]\n'
    stage = parse(text).final
    copy = stage.last("COPY")
    assert {"from": "build", "chown": "1:1"} == copy.flags
    assert "/w /w" == copy.args
    assert {"interval": "5s"} == stage.last("HEALTHCHECK").flags


def test_label_and_env_pairs_unquote_values():
    """LABEL and ENV take quoted ``key=value`` pairs; the legacy ``ENV key value`` form too."""
    text = 'FROM a\nLABEL a="x y" b=z\nENV K=1 \\\n    L="two words"\nENV OLD legacy value\n'
    stage = parse(text).final
    assert {"a": "x y", "b": "z"} == stage.labels()
    assert {"K": "1", "L": "two words", "OLD": "legacy value"} == stage.env()


def test_a_stage_redeclaring_a_global_arg_gets_its_value():
    """A bare ``ARG NAME`` inside a stage inherits the global default."""
    dockerfile = parse("ARG V=1\nFROM a\nARG V\nARG W=2\n")
    assert {"V": "1", "W": "2"} == dockerfile.final.args(dockerfile.global_args)


def test_expand_honours_defaults():
    """``${X:-d}`` falls back to ``d`` when X is unset or empty."""
    assert "d-1" == expand("${X:-d}-$Y", {"Y": "1"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN x\n", "only ARG may come before the first FROM"),
        ("FROM a\nRUN <<EOF\nx\nEOF\n", "heredocs are not supported"),
        ("FROM a\nRUN x \\\n", "ends inside a line continuation"),
        ("ARG X=1\n", "no FROM instruction"),
    ],
)
def test_malformed_files_are_refused(text, message):
    """What the parser cannot read faithfully is an error, not a guess."""
    with pytest.raises(ValueError, match=message):
        parse(text)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".venv/bin/python", True),
        ("src/pkg/mod.py", False),
        ("src/pkg/__pycache__/mod.cpython-311.pyc", True),
        ("deep/x/y.pyc", True),
        ("README.md", False),
        ("notes.txt", True),
    ],
)
def test_dockerignore_last_matching_rule_wins_and_parents_count(path, expected):
    """An allow-list with re-excluded caches: the last matching rule decides, parents included."""
    rules = parse_ignore("*\n!src/\n!README.md\n**/__pycache__\n**/*.py[co]\n")
    assert expected == is_excluded(rules, path)


def test_pod_paths_are_rewritten_once_and_only_at_path_boundaries(tmp_path):
    """A mounted path is replaced by its copy, never inside a longer path or inside the copy."""
    root = tmp_path / "scratch" / "x"
    pod = PodFiles(root)
    pod.mount("/scratch")
    pod.mount("/run/secrets/app", {"token": "t"})
    text = "/run/secrets/app/token /scratch /var/scratch/a /scratchy"
    expected = f"{root}/run/secrets/app/token {root}/scratch /var/scratch/a /scratchy"
    assert expected == pod.rewrite(text)
    assert "t" == pod.host_path("/run/secrets/app/token").read_text()
