"""SQL for the place a notice names: each device's own and its ancestors' areas and names,
nearest first, judged by ``gridwatch.topology._place.place_words``."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection

from gridwatch.topology._place import place_words

# A validated topology is a tree; the cap only guards a hand-edited table with a loop.
_MAX_DEPTH = 1000


async def device_places(conn: AsyncConnection, device_ids: Sequence[str]) -> dict[str, str]:
    """device -> the place its customers know ("" for none, and for an unknown device:
    never the id itself). Walks the as-built tree, as planned work and the status page do."""
    wanted = sorted(set(device_ids))
    if not wanted:
        return {}
    cur = await conn.execute(
        """
        WITH RECURSIVE up(start_id, parent_id, area, name, depth) AS (
            SELECT device_id, parent_id, area, name, 0 FROM devices
            WHERE device_id = ANY(%(ids)s)
            UNION ALL
            SELECT up.start_id, d.parent_id, d.area, d.name, up.depth + 1
            FROM up JOIN devices d ON d.device_id = up.parent_id
            WHERE up.depth < %(max)s
        )
        SELECT start_id, array_agg(area ORDER BY depth), array_agg(name ORDER BY depth)
        FROM up GROUP BY start_id
        """,
        {"ids": wanted, "max": _MAX_DEPTH},
    )
    places = {str(r[0]): place_words(r[1], r[2]) for r in await cur.fetchall()}
    return {d: places.get(d, "") for d in wanted}


__all__ = ["device_places"]
