"""The example's handlers: ``--app examples.character_extraction.jobs:registry``.

``character_extraction`` pretends to find the characters of a list of episodes,
one step per episode, with a progress report after each; it stops early when
its user cancels. ``episode_summary`` is a plain ``def`` handler: it runs in a
thread and reports progress through the blocking context.

Input knobs make the simulated work slower or flakier, for trying things out:
``seconds_per_episode`` (default 0.5) and ``fail_first_attempts`` (the first N
attempts raise, to show retries).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jobdesk.worker import Fail, JobContext, Registry, Retry, SyncJobContext

registry = Registry()

CAST = ("Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances")


def _episodes(input: dict[str, Any]) -> list[str]:  # noqa: A002 - the handler's argument name
    episodes = input.get("episode_ids")
    if not isinstance(episodes, list) or not all(isinstance(e, str) for e in episodes):
        # The same input would fail again: no point in retrying.
        raise Fail("input.episode_ids must be a list of episode ids", code="bad_input")
    return episodes


@registry.handler("character_extraction", timeout=600, max_attempts=3)
async def extract_characters(ctx: JobContext, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    """Find the characters of each episode; report progress after each one."""
    episodes = _episodes(input)
    if ctx.job.attempt - ctx.job.attempt_offset <= input.get("fail_first_attempts", 0):
        raise Retry("the (simulated) model server is busy", after=1)
    pause = float(input.get("seconds_per_episode", 0.5))
    found: dict[str, list[str]] = {}
    for done, episode in enumerate(episodes, start=1):
        if ctx.cancelled:  # the user cancelled: stop between steps
            break
        await asyncio.sleep(pause)  # the real work: a model call, say
        found[episode] = [CAST[(len(episode) + step) % len(CAST)] for step in range(2)]
        await ctx.progress(
            100 * done / len(episodes), f"episode {episode} ({done}/{len(episodes)})"
        )
    characters = sorted({name for names in found.values() for name in names})
    return {"characters": characters, "by_episode": found}


@registry.handler("episode_summary", timeout=120)
def summarise(ctx: SyncJobContext, input: dict[str, Any]) -> dict[str, Any]:  # noqa: A002
    """A blocking handler (it runs in a thread): one summary line per episode."""
    episodes = _episodes(input)
    pause = float(input.get("seconds_per_episode", 0.2))
    lines = []
    for done, episode in enumerate(episodes, start=1):
        if ctx.cancelled:
            break
        time.sleep(pause)  # blocking work is fine here: this is not the event loop
        lines.append(f"{episode}: things happen")
        ctx.progress(100 * done / len(episodes), f"summarised {episode}")
    return {"summary": lines}
