"""The engine: asyncio, pydantic and aiosqlite. Never imports textual or rich."""
