"""Every Python block of the README and docs/ works as printed.

A block is one of three kinds, told by its info string:

- ```` ```python ````: a whole program. It runs, in a process of its own, twice in one
  fresh directory (its ``sqlite:///jobdesk.db`` is new the first time and holds the
  first run's jobs the second), and must exit 0 both times: examples are rerunnable
  and check what they claim (``assert``).
- ```` ```python fragment ````: part of a larger program (``desk``, ``worker``... come
  from around it). It must compile, and name nothing that is neither defined in it
  nor one of the names of :data:`CONTEXT` (ruff's undefined-name check).
- ```` ```python signature ````: an operation's signature. Its parameters must be the
  real method's, by name and in order.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobdesk import JobDesk

REPOSITORY = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
KINDS = {"", "fragment", "signature"}
RUN_TIMEOUT = 60  # seconds per run of a program

#: the names a fragment may take from the program around it
CONTEXT = (
    "desk",
    "group",
    "worker",
    "job",
    "job_id",
    "user_id",
    "episodes",
    "registry",
    "ctx",
    "input",
    "token",
    "app",
    "settings",
)


@dataclass(frozen=True)
class Block:
    """One ```` ```python ```` block of a document."""

    path: Path
    line: int
    kind: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPOSITORY)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(path, line, match.group(1).strip(), match.group(2)))
    return found


BLOCKS = blocks()


def of_kind(kind: str) -> list[Block]:
    return [block for block in BLOCKS if block.kind == kind]


def test_every_block_says_what_it_is() -> None:
    unknown = [f"{block.name}: {block.kind!r}" for block in BLOCKS if block.kind not in KINDS]
    assert not unknown, f"python blocks are programs, `fragment` or `signature`: {unknown}"
    assert len(of_kind("")) >= 3


@pytest.mark.parametrize("block", of_kind(""), ids=lambda block: block.name)
def test_a_program_runs_twice_on_a_fresh_database(block: Block, tmp_path: Path) -> None:
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, "-c", block.code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{block.name}, run {run}:\n{done.stdout}\n{done.stderr}"


def test_fragments_compile_and_name_only_what_they_define_or_their_context(
    tmp_path: Path,
) -> None:
    fragments = of_kind("fragment")
    assert fragments
    for number, block in enumerate(fragments):
        # In a coroutine: fragments await; the context arrives as its parameters.
        wrapped = f"async def fragment({', '.join(CONTEXT)}):\n" + textwrap.indent(
            block.code, "    "
        )
        compile(wrapped, block.name, "exec")
        (tmp_path / f"fragment_{number}.py").write_text(wrapped, encoding="utf-8")
    checked = subprocess.run(
        [
            *(sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated"),
            *("--select", "F821", "--output-format", "concise", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    blocks = {f"fragment_{number}.py": block for number, block in enumerate(fragments)}
    report = re.sub(
        r"\S*(fragment_\d+\.py):(\d+)",
        # The line in the document: the block's code starts a line below its fence, and
        # the wrapper adds one line above it.
        lambda m: f"{blocks[m.group(1)].path.name}:{blocks[m.group(1)].line + int(m.group(2)) - 1}",
        checked.stdout,
    )
    assert checked.returncode == 0, report


#: parameters kept for old callers, left out of the docs
DEPRECATED = {"max_active"}


def _signatures(block: str) -> list[str]:
    """The signatures of a block: each starts a line with ``name(``."""
    return [part for part in re.split(r"^(?=[A-Za-z_][\w.]*\()", block, flags=re.M) if part]


def _parameters(signature: str) -> tuple[str, list[str]]:
    """The operation a signature block names, and its parameters' names in order."""
    head, _, rest = signature.strip().partition("(")
    name = head.split(".")[-1]
    tree = ast.parse(f"def {name}({rest}: ...")
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    arguments = function.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return name, [argument.arg for argument in every]


@pytest.mark.parametrize("block", of_kind("signature"), ids=lambda block: block.name)
def test_a_signature_is_the_real_one(block: Block) -> None:
    for signature in _signatures(block.code):
        name, documented = _parameters(signature)
        real = inspect.signature(getattr(JobDesk, name)).parameters
        assert documented == [name for name in real if name not in {"self", *DEPRECATED}]
