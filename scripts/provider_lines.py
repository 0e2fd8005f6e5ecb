"""Count the providers' client, cursor, paging and rate-limit code at one or more commits.

    python scripts/provider_lines.py 6cef918 HEAD

For each commit and each of the three CI providers it counts the modules whose name says they hold
that code (``client``, ``cursor``, ``paging``, ``ratelimit``, ``quota``): all their lines (``wc -l``)
and their code lines (no blank line, comment or docstring). Whatever moved into the shared provider
kit is counted once, apart; so is the rest of each provider, so that code pushed from those modules
into others shows up too. Files are read with ``git show``: the working tree is not looked at.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize

PROVIDERS = ("github", "gitlab", "azure_devops")
CONCERNS = ("client", "cursor", "paging", "ratelimit", "quota")
ROOT = "src/deploy_fetcher/providers"


def _git(*args: str) -> str:
    command = ("git", *args)  # git from PATH, as the developer running this has it
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT):
            continue
        if token.type in (tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def measure(commit: str) -> dict[str, tuple[int, int]]:
    """``{group: (lines, code lines)}`` at ``commit``."""
    files = _git("ls-tree", "-r", "--name-only", commit, ROOT).split()
    groups: dict[str, tuple[int, int]] = {}
    for path in files:
        if not path.endswith(".py"):
            continue
        parts = path[len(ROOT) + 1 :].split("/")
        stem = parts[-1].removesuffix(".py")
        if parts[0] in PROVIDERS and len(parts) == 2:  # noqa: PLR2004 - <provider>/<module>.py
            group = f"{parts[0]} {'concerns' if stem in CONCERNS else 'rest'}"
        elif parts[0] == "kit":
            group = "kit"
        else:
            continue
        source = _git("show", f"{commit}:{path}")
        lines, code = groups.get(group, (0, 0))
        groups[group] = (lines + source.count("\n"), code + code_lines(source))
    return groups


def main(commits: list[str]) -> None:
    """Print one table per commit and the change of the providers' own concern modules."""
    totals: list[tuple[int, int]] = []
    for commit in commits:
        groups = measure(commit)
        print(f"{commit} ({_git('rev-parse', '--short', commit).strip()})")
        for group in sorted(groups):
            lines, code = groups[group]
            print(f"  {group:<26} {lines:>6} lines {code:>6} code lines")
        concern = [v for k, v in groups.items() if k.endswith("concerns")]
        total = (sum(v[0] for v in concern), sum(v[1] for v in concern))
        totals.append(total)
        print(f"  {'three providers, concerns':<26} {total[0]:>6} lines {total[1]:>6} code lines")
    if len(totals) > 1:
        (before, before_code), (after, after_code) = totals[0], totals[-1]
        print(
            f"fewer: {1 - after / before:.0%} of lines, {1 - after_code / before_code:.0%} "
            "of code lines"
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["HEAD"])
