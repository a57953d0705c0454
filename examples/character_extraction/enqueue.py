"""Create a few example jobs: ``python examples/character_extraction/enqueue.py [--db URL]``."""

from __future__ import annotations

import argparse
import asyncio

from jobdesk import JobDesk


async def main(url: str) -> None:
    """Create jobs for two users and print their ids."""
    async with JobDesk.open(url) as desk:
        for user, count in (("alice", 3), ("bob", 2)):
            for number in range(count):
                episodes = [f"s01e{number * 4 + step:02d}" for step in range(1, 5)]
                job = await desk.create_job(
                    user, "character_extraction", {"episode_ids": episodes}, project_id="pilot"
                )
                print(f"{user}: {job.id} character_extraction {episodes}")
        job = await desk.create_job("bob", "episode_summary", {"episode_ids": ["s01e01", "s01e02"]})
        print(f"bob: {job.id} episode_summary")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite:///jobdesk.db", help="database URL")
    asyncio.run(main(parser.parse_args().db))
